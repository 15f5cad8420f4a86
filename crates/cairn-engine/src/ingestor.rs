//! The ingest handle and its bounded queue.
//!
//! The queue is bounded in events, not requests: [`Ingestor::submit`] refuses a request whose events
//! would take the queue past its capacity, or that arrives while the applier is further behind the
//! log than the configured lag, so memory stays bounded under overload and the client is told to
//! retry later. Messages are encoded for the log on the caller's thread, so the single log writer
//! only de-duplicates, appends and commits.

use crate::codec::EncodedRequest;
use crate::dedupe;
use crate::metrics::Metrics;
use crate::progress::Progress;
use cairn_model::{NormalizedMessage, WorkspaceId};
use cairn_storage::StorageError;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use tokio::sync::oneshot;

/// What happened to a request's messages once committed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Receipt {
    /// Messages stored by this request.
    pub accepted: usize,
    /// Messages dropped because their `messageId` was already stored.
    pub duplicates: usize,
    /// The log record that holds the accepted messages (0 when every message was a duplicate).
    pub seq: u64,
}

/// Why a request was not committed. In every case nothing of it was stored.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the ingest queue is full")]
    Overloaded,
    #[error("the engine is shutting down")]
    ShuttingDown,
    #[error("{0}")]
    Storage(Arc<StorageError>),
}

/// One input waiting for the log writer.
pub(crate) struct Pending {
    pub workspace: WorkspaceId,
    pub received_at_ms: i64,
    pub input: PendingInput,
    pub reply: oneshot::Sender<Result<Receipt, EngineError>>,
}

/// What an input holds.
pub(crate) enum PendingInput {
    /// A request's messages, with the de-duplication key of each.
    Messages {
        keys: Vec<u128>,
        request: EncodedRequest,
    },
    /// An operator command, encoded.
    Command(Vec<u8>),
    /// Time passes.
    Tick,
}

impl Pending {
    /// Events this input adds to the queue.
    pub(crate) fn events(&self) -> usize {
        match &self.input {
            PendingInput::Messages { request, .. } => request.len(),
            PendingInput::Command(_) | PendingInput::Tick => 1,
        }
    }
}

/// The log writer's end of the queue.
pub(crate) struct Queue {
    pub receiver: mpsc::Receiver<Pending>,
    pub queued_events: Arc<AtomicUsize>,
}

/// A cloneable handle that submits requests to the log writer.
#[derive(Clone)]
pub struct Ingestor {
    sender: Arc<Mutex<Option<mpsc::Sender<Pending>>>>,
    queued_events: Arc<AtomicUsize>,
    capacity: usize,
    max_apply_lag_events: u64,
    progress: Arc<Progress>,
    metrics: Arc<Metrics>,
}

pub(crate) fn channel(
    capacity: usize,
    max_apply_lag_events: u64,
    progress: Arc<Progress>,
    metrics: Arc<Metrics>,
) -> (Ingestor, Queue) {
    let (sender, receiver) = mpsc::channel();
    let queued_events = Arc::new(AtomicUsize::new(0));
    (
        Ingestor {
            sender: Arc::new(Mutex::new(Some(sender))),
            queued_events: queued_events.clone(),
            capacity,
            max_apply_lag_events,
            progress,
            metrics,
        },
        Queue {
            receiver,
            queued_events,
        },
    )
}

impl Ingestor {
    /// Queues `messages` and waits until they are durably in the log.
    pub async fn submit(
        &self,
        workspace: WorkspaceId,
        messages: Vec<NormalizedMessage>,
    ) -> Result<Receipt, EngineError> {
        let reply = self.enqueue(workspace, messages)?;
        reply.await.unwrap_or(Err(EngineError::ShuttingDown))
    }

    /// Like [`Ingestor::submit`], for callers outside an async runtime (the CLI's import).
    pub fn submit_blocking(
        &self,
        workspace: WorkspaceId,
        messages: Vec<NormalizedMessage>,
    ) -> Result<Receipt, EngineError> {
        let reply = self.enqueue(workspace, messages)?;
        reply
            .blocking_recv()
            .unwrap_or(Err(EngineError::ShuttingDown))
    }

    /// Events waiting for the log writer.
    pub fn queued_events(&self) -> usize {
        self.queued_events.load(Ordering::Acquire)
    }

    fn enqueue(
        &self,
        workspace: WorkspaceId,
        messages: Vec<NormalizedMessage>,
    ) -> Result<oneshot::Receiver<Result<Receipt, EngineError>>, EngineError> {
        let count = messages.len();
        if self.progress.apply_lag_events() > self.max_apply_lag_events {
            return Err(EngineError::Overloaded);
        }
        // A request larger than the whole queue is still admitted into an empty queue.
        self.reserve(count)?;
        let keys = messages
            .iter()
            .map(|message| dedupe::key(&workspace, &message.message_id))
            .collect();
        let received_at_ms = messages
            .first()
            .map_or(0, |message| message.received_at.timestamp_millis());
        let request = EncodedRequest::new(&messages);
        drop(messages);
        self.send(
            workspace,
            received_at_ms,
            PendingInput::Messages { keys, request },
            count,
        )
    }

    /// Appends an operator command to the log; the receipt's `seq` is its log record.
    pub async fn submit_command(
        &self,
        workspace: WorkspaceId,
        command: &crate::journeys::command::Command,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Receipt, EngineError> {
        let reply = self.reserve(1).and_then(|()| {
            self.send(
                workspace,
                at.timestamp_millis(),
                PendingInput::Command(command.encode()),
                1,
            )
        })?;
        reply.await.unwrap_or(Err(EngineError::ShuttingDown))
    }

    /// Like [`Ingestor::submit_command`], outside an async runtime.
    pub fn submit_command_blocking(
        &self,
        workspace: WorkspaceId,
        command: &crate::journeys::command::Command,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Receipt, EngineError> {
        let reply = self.reserve(1).and_then(|()| {
            self.send(
                workspace,
                at.timestamp_millis(),
                PendingInput::Command(command.encode()),
                1,
            )
        })?;
        reply
            .blocking_recv()
            .unwrap_or(Err(EngineError::ShuttingDown))
    }

    /// Appends a tick (time has passed to `at`); the receipt's `seq` is its log record.
    pub fn submit_tick_blocking(
        &self,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Receipt, EngineError> {
        let reply = self.reserve(1).and_then(|()| {
            self.send(
                WorkspaceId::new(""),
                at.timestamp_millis(),
                PendingInput::Tick,
                1,
            )
        })?;
        reply
            .blocking_recv()
            .unwrap_or(Err(EngineError::ShuttingDown))
    }

    /// Reserves room for `count` events in the queue (commands and ticks count as one).
    fn reserve(&self, count: usize) -> Result<(), EngineError> {
        self.queued_events
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                (queued == 0 || queued + count <= self.capacity).then_some(queued + count)
            })
            .map(|_| ())
            .map_err(|_| EngineError::Overloaded)
    }

    fn send(
        &self,
        workspace: WorkspaceId,
        received_at_ms: i64,
        input: PendingInput,
        count: usize,
    ) -> Result<oneshot::Receiver<Result<Receipt, EngineError>>, EngineError> {
        let (reply, receiver) = oneshot::channel();
        let sent = match self.sender.lock().as_ref() {
            Some(sender) => sender
                .send(Pending {
                    workspace,
                    received_at_ms,
                    input,
                    reply,
                })
                .is_ok(),
            None => false,
        };
        if !sent {
            self.queued_events.fetch_sub(count, Ordering::AcqRel);
            return Err(EngineError::ShuttingDown);
        }
        self.metrics.queue_events.set(self.queued_events() as i64);
        Ok(receiver)
    }

    /// Refuses further work; the log writer commits what is queued and stops.
    pub(crate) fn close(&self) {
        self.sender.lock().take();
    }
}
