//! The applier: reads committed log records in order and applies them to the in-memory state, and
//! writes checkpoints of what changed.
//!
//! It is the single writer of every partition's state. It waits for the log writer to commit,
//! reads the new records back from the log (the same path a replay after a crash takes, so there is
//! only one), decodes them and applies them under the state's write lock, a chunk at a time so
//! readers get in between. Every `checkpoint_interval`, or when enough timeline entries are
//! pending, it copies what changed — a few thousand profiles per hold of the write lock, between
//! applying steps, then the rest at once — and hands the copy to the [`crate::checkpoint_writer`], which
//! has the store commit it with the copy's log position and then forgets what was written, while
//! the applier goes on applying. On shutdown it applies everything committed and writes a last
//! checkpoint.

use crate::checkpoint_writer::{CheckpointWriter, Job};
use crate::codec::{decode_messages, decompress};
use crate::identity::IdentityResolver;
use crate::journeys::command::Command;
use crate::metrics::Metrics;
use crate::progress::Progress;
use crate::state::{CheckpointCopy, State};
use crate::EngineOptions;
use cairn_storage::{LogReader, LogRecord, OutboxRow, RecordKind, StorageResult};
use parking_lot::RwLock;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Log records read and applied per step (the write lock is released between steps).
const RECORDS_PER_STEP: usize = 64;
/// Longest wait for new records before checking whether a checkpoint is due.
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// A checkpoint copy that has copied this many times the profiles dirty when it began is finished
/// at once (under a load that dirties profiles faster than rounds copy them).
const MAX_COPY_FACTOR: usize = 3;

/// A checkpoint being copied, a round at a time between applying steps.
struct Building {
    copy: CheckpointCopy,
    answers_requests: Option<u64>,
    /// Profiles copied so far, and the most to copy in rounds before finishing at once.
    copied: usize,
    budget: usize,
}

pub(crate) struct Applier {
    pub options: EngineOptions,
    pub state: Arc<RwLock<State>>,
    /// Commits checkpoint copies on its own thread.
    pub checkpoints: CheckpointWriter,
    pub log: Arc<dyn LogReader>,
    pub identity: Box<dyn IdentityResolver>,
    pub progress: Arc<Progress>,
    pub metrics: Arc<Metrics>,
    /// Where new outbox messages go (the dispatcher), if anyone listens.
    pub outbox_feed: OutboxFeed,
}

/// The subscriber of new outbox messages. Notices are best effort: when the subscriber falls
/// behind, they are dropped and [`OutboxFeed::lagged`] is set, and the subscriber reconciles with the
/// store (outbox messages are checkpointed and ids are deterministic).
#[derive(Clone, Default)]
pub(crate) struct OutboxFeed {
    sender: Arc<parking_lot::Mutex<Option<std::sync::mpsc::SyncSender<OutboxRow>>>>,
    lagged: Arc<std::sync::atomic::AtomicBool>,
}

impl OutboxFeed {
    pub(crate) fn subscribe(
        &self,
        capacity: usize,
    ) -> (
        std::sync::mpsc::Receiver<OutboxRow>,
        Arc<std::sync::atomic::AtomicBool>,
    ) {
        let (sender, receiver) = std::sync::mpsc::sync_channel(capacity);
        *self.sender.lock() = Some(sender);
        (receiver, self.lagged.clone())
    }

    fn publish(&self, rows: Vec<OutboxRow>) {
        let sender = self.sender.lock();
        let Some(sender) = sender.as_ref() else {
            return;
        };
        for row in rows {
            if sender.try_send(row).is_err() {
                self.lagged
                    .store(true, std::sync::atomic::Ordering::Release);
            }
        }
    }
}

impl Applier {
    pub(crate) fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("cairn-apply".into())
            .spawn(move || self.run())
    }

    fn run(mut self) {
        let recovery_target = self.progress.committed();
        let mut last_checkpoint = Instant::now();
        let mut building: Option<Building> = None;
        loop {
            let applied = self.progress.applied();
            if applied >= recovery_target && !self.progress.is_recovered() {
                self.progress.set_recovered();
                tracing::info!(applied, "the state has caught up with the log");
            }
            let committed = self.progress.committed();
            if committed > applied {
                if let Err(error) = self.step(applied) {
                    tracing::error!(%error, "cannot read the log; retrying");
                    std::thread::sleep(IDLE_WAIT);
                }
            } else if self.progress.is_log_closed() {
                break;
            } else if building.is_none() {
                self.progress.wait_for_commit(applied, IDLE_WAIT);
            }
            if let Some(copying) = building.take() {
                building = self.copy_round(copying);
                continue;
            }
            if self.progress.checkpoint_in_flight() {
                continue;
            }
            let pending = self.state.read().pending_timeline();
            let requested = self.progress.checkpoint_requested()
                && self.progress.applied() >= self.progress.committed();
            if requested
                || last_checkpoint.elapsed() >= self.options.checkpoint_interval
                || pending >= self.options.checkpoint_max_pending_events
            {
                building =
                    self.begin_checkpoint(requested.then(|| self.progress.checkpoint_requests()));
                last_checkpoint = Instant::now();
            }
        }
        self.checkpoints.wait_idle();
        if let Some(copying) = building.take() {
            // Finish the copy begun: its profiles are marked clean and must reach the store.
            self.finish(copying);
            self.checkpoints.wait_idle();
        }
        if self.options.checkpoint_on_shutdown {
            if let Some(copying) = self.begin_checkpoint(None) {
                self.finish(copying);
            }
        }
        self.checkpoints.stop();
        tracing::info!(applied = self.progress.applied(), "applier stopped");
    }

    /// Reads and applies the next records after `applied`.
    fn step(&mut self, applied: u64) -> StorageResult<()> {
        let records = self.log.read_after(applied, RECORDS_PER_STEP)?;
        let Some(last) = records.last().map(|record| record.seq) else {
            return Ok(());
        };
        let started = Instant::now();
        let mut events = 0;
        {
            let shared = self.state.clone();
            let mut state = shared.write();
            for record in &records {
                events += self.apply(&mut state, record);
            }
            self.progress.set_next_due_ms(state.next_due_ms());
            self.metrics.timers_waiting.set(state.timer_count() as i64);
            self.outbox_feed.publish(state.take_fresh_outbox());
        }
        self.metrics
            .apply_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.events_applied.inc_by(events);
        self.progress.publish_applied(last, events);
        self.metrics
            .apply_lag_events
            .set(self.progress.apply_lag_events() as i64);
        Ok(())
    }

    /// Applies one record; returns its events. A record that cannot be decoded (only a corrupt
    /// store has one) is skipped with an error, so it cannot stop everything behind it.
    fn apply(&mut self, state: &mut State, record: &LogRecord) -> u64 {
        match record.kind {
            RecordKind::Messages => {
                let applied = decompress(&record.payload)
                    .map_err(crate::state::ApplyError::from)
                    .and_then(|plain| {
                        let messages = decode_messages(&plain)?;
                        state.apply_messages(
                            record.seq,
                            &record.workspace,
                            record.received_at_ms,
                            &messages,
                            self.identity.as_mut(),
                        )
                    });
                match applied {
                    Ok(applied) => {
                        self.metrics.profiles_merged.inc_by(applied.merges);
                        applied.events
                    }
                    Err(error) => {
                        tracing::error!(seq = record.seq, %error, "a log record cannot be applied; skipped");
                        self.metrics.apply_failures.inc();
                        state.skip_record(record.seq);
                        0
                    }
                }
            }
            RecordKind::Tick => {
                state.apply_tick(record.seq, record.received_at_ms);
                0
            }
            RecordKind::Command => {
                match Command::decode(&record.payload) {
                    Ok(command) => state.apply_command(
                        record.seq,
                        &record.workspace,
                        record.received_at_ms,
                        command,
                    ),
                    Err(error) => {
                        tracing::error!(seq = record.seq, %error, "a command record cannot be decoded; skipped");
                        self.metrics.apply_failures.inc();
                        state.skip_record(record.seq);
                    }
                }
                0
            }
        }
    }

    /// Starts a checkpoint copy if anything changed since the last one; `answers_requests`: the
    /// checkpoint requests it answers (answered at once when there is nothing to write).
    fn begin_checkpoint(&mut self, answers_requests: Option<u64>) -> Option<Building> {
        let state = self.state.read();
        if !state.has_changes() && state.applied_seq() == self.checkpoints.committed() {
            drop(state);
            if let Some(upto) = answers_requests {
                self.progress.checkpoint_written(upto);
            }
            return None;
        }
        let dirty = state.dirty_profiles();
        Some(Building {
            copy: CheckpointCopy::default(),
            answers_requests,
            copied: 0,
            budget: dirty.saturating_mul(MAX_COPY_FACTOR),
        })
    }

    /// Copies one round of changed profiles; once few remain (or the budget is spent), finishes
    /// the copy and hands it to the writer.
    fn copy_round(&mut self, mut building: Building) -> Option<Building> {
        let round = self.options.checkpoint_round_profiles.max(1);
        let remaining = self
            .state
            .write()
            .copy_dirty_profiles(&mut building.copy, round);
        building.copied += round;
        if remaining > round && building.copied < building.budget {
            return Some(building);
        }
        self.finish(building);
        None
    }

    /// Finishes a copy at once and hands it to the writer.
    fn finish(&mut self, building: Building) {
        let copy = self.state.write().finish_checkpoint(building.copy);
        self.checkpoints.write(Job {
            copy,
            answers_requests: building.answers_requests,
        });
    }
}
