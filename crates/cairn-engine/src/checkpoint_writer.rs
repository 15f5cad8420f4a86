//! The checkpoint writer: commits the applier's copies of what changed to the state store on its
//! own thread, so applying never waits for a checkpoint's disk writes.
//!
//! The applier copies under the state's write lock, a round of changed profiles at a time between
//! applying steps ([`crate::state::State::copy_dirty_profiles`], which marks the copied profiles
//! clean: a change after their round marks them dirty again, and a later round copies them again),
//! then the rest with the workspace state and the log position under one lock
//! ([`crate::state::State::finish_checkpoint`]), and hands the copy over; one copy is in flight at
//! a time ([`crate::progress::Progress`] says which). Once
//! the store committed it, the writer has the state forget what was written (the copied prefixes of
//! each profile's pending timeline, traces and outbox), a few thousand profiles per hold of the
//! lock, freeing the emptied buffers after each; if the store failed, it marks everything the copy
//! held dirty again, so the next checkpoint writes it.

use crate::metrics::Metrics;
use crate::progress::Progress;
use crate::state::{CheckpointCopy, State};
use cairn_storage::StateStore;
use parking_lot::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::Instant;

/// Profiles whose written pending lists are forgotten under one hold of the state's lock.
const FORGET_PART_PROFILES: usize = 5_000;

/// A copy to write, and the checkpoint requests it answers.
pub(crate) struct Job {
    pub copy: CheckpointCopy,
    pub answers_requests: Option<u64>,
}

/// The applier's handle on the writer thread.
pub(crate) struct CheckpointWriter {
    jobs: Option<Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    progress: Arc<Progress>,
    /// The log position of the last committed checkpoint.
    committed: Arc<AtomicU64>,
}

impl CheckpointWriter {
    pub(crate) fn spawn(
        store: Box<dyn StateStore>,
        state: Arc<RwLock<State>>,
        progress: Arc<Progress>,
        metrics: Arc<Metrics>,
        checkpointed: u64,
        gate: Option<crate::Gate>,
    ) -> std::io::Result<CheckpointWriter> {
        let (jobs, receiver) = std::sync::mpsc::channel();
        let committed = Arc::new(AtomicU64::new(checkpointed));
        let writer = Writer {
            store,
            state,
            progress: progress.clone(),
            metrics,
            committed: committed.clone(),
            gate,
        };
        let thread = std::thread::Builder::new()
            .name("cairn-checkpoint".into())
            .spawn(move || {
                cairn_storage::background::lower_cpu_priority();
                writer.run(receiver)
            })?;
        Ok(CheckpointWriter {
            jobs: Some(jobs),
            thread: Some(thread),
            progress,
            committed,
        })
    }

    /// The log position of the last committed checkpoint.
    pub(crate) fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    /// Hands a copy to the writer (the caller checked that none is in flight).
    pub(crate) fn write(&self, job: Job) {
        self.progress.set_checkpoint_in_flight(true);
        let sent = self
            .jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(job).is_ok());
        if !sent {
            tracing::error!("the checkpoint writer is gone; the copy is dropped");
            self.progress.set_checkpoint_in_flight(false);
        }
    }

    /// Waits until the copy in flight, if any, is written.
    pub(crate) fn wait_idle(&self) {
        while self.progress.checkpoint_in_flight() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Writes what is in flight, then stops the thread.
    pub(crate) fn stop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the checkpoint writer panicked");
            }
        }
    }
}

impl Drop for CheckpointWriter {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Writer {
    store: Box<dyn StateStore>,
    state: Arc<RwLock<State>>,
    progress: Arc<Progress>,
    metrics: Arc<Metrics>,
    committed: Arc<AtomicU64>,
    gate: Option<crate::Gate>,
}

impl Writer {
    fn run(mut self, jobs: Receiver<Job>) {
        for job in jobs {
            self.write(job);
            self.progress.set_checkpoint_in_flight(false);
        }
    }

    fn write(&mut self, job: Job) {
        let Job {
            copy,
            answers_requests,
        } = job;
        if let Some(gate) = &self.gate {
            gate.pass();
        }
        let started = Instant::now();
        let applied_seq = copy.checkpoint.applied_seq;
        let entries = copy.checkpoint.timeline.len();
        let profiles = copy.checkpoint.profiles.len();
        match self.store.checkpoint(&copy.checkpoint) {
            Ok(()) => {
                for part in copy.written().chunks(FORGET_PART_PROFILES) {
                    let released = self.state.write().forget_written(part);
                    drop(released);
                }
                self.committed.store(applied_seq, Ordering::Release);
                self.metrics.checkpoints.inc();
                self.metrics
                    .checkpoint_seconds
                    .observe(started.elapsed().as_secs_f64());
                tracing::debug!(applied_seq, profiles, entries, "checkpoint committed");
            }
            Err(error) => {
                // Nothing is forgotten: what the copy held is dirty again for the next checkpoint.
                self.state.write().checkpoint_failed(&copy);
                tracing::error!(%error, "checkpoint failed; will retry");
                self.metrics.checkpoint_failures.inc();
            }
        }
        // Freed here, not under the state's lock (a copy can hold a million rows), and before the
        // requests it answers hear of it: whoever asked for a checkpoint finds no copy alive.
        drop(copy);
        if let Some(upto) = answers_requests {
            self.progress.checkpoint_written(upto);
        }
    }
}
