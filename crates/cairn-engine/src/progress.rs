//! How far the log and the applier have come, shared between the engine's threads.
//!
//! The log writer publishes the last committed sequence number after each group commit; the applier
//! waits for it and publishes what it has applied. Event counters of both give the apply lag that the
//! ingest back-pressure bounds.

use parking_lot::{Condvar, Mutex};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// The highest committed log sequence number.
    committed: AtomicU64,
    /// The highest log sequence number the applier has applied (in memory).
    applied: AtomicU64,
    /// Events committed to the log since start.
    logged_events: AtomicU64,
    /// Events applied since start.
    applied_events: AtomicU64,
    /// Set once the applier has caught up with the log as it was at start.
    recovered: AtomicBool,
    /// Set when the log writer has stopped: nothing more will be committed.
    log_closed: AtomicBool,
    /// When the next timer or schedule is due (ms), `i64::MAX` when none: the ticker's cue.
    next_due_ms: AtomicI64,
    /// Checkpoints asked for, and checkpoints written (requested ones included).
    checkpoints_requested: AtomicU64,
    checkpoints_written: AtomicU64,
    /// Set while the checkpoint writer writes a copy (the applier starts no other meanwhile).
    checkpoint_in_flight: AtomicBool,
    wakeup: Mutex<()>,
    committed_changed: Condvar,
    applied_changed: Condvar,
}

impl Progress {
    pub(crate) fn new(committed: u64, applied: u64) -> Self {
        let progress = Progress::default();
        progress.committed.store(committed, Ordering::Release);
        progress.applied.store(applied, Ordering::Release);
        progress.next_due_ms.store(i64::MAX, Ordering::Release);
        progress
    }

    /// Asks the applier for a checkpoint; returns the count to wait for.
    pub(crate) fn request_checkpoint(&self) -> u64 {
        let wanted = self.checkpoints_requested.fetch_add(1, Ordering::AcqRel) + 1;
        let _guard = self.wakeup.lock();
        self.committed_changed.notify_all();
        wanted
    }

    /// Whether a checkpoint was asked for and not yet written.
    pub(crate) fn checkpoint_requested(&self) -> bool {
        self.checkpoints_requested.load(Ordering::Acquire)
            > self.checkpoints_written.load(Ordering::Acquire)
    }

    /// How many checkpoints were asked for so far (what a copy taken now answers).
    pub(crate) fn checkpoint_requests(&self) -> u64 {
        self.checkpoints_requested.load(Ordering::Acquire)
    }

    /// A checkpoint answering the first `upto` requests was written.
    pub(crate) fn checkpoint_written(&self, upto: u64) {
        self.checkpoints_written.fetch_max(upto, Ordering::AcqRel);
        let _guard = self.wakeup.lock();
        self.applied_changed.notify_all();
    }

    /// Whether the checkpoint writer is writing a copy.
    pub(crate) fn checkpoint_in_flight(&self) -> bool {
        self.checkpoint_in_flight.load(Ordering::Acquire)
    }

    /// The writer took a copy (`true`) or finished with it (`false`, which wakes the applier).
    pub(crate) fn set_checkpoint_in_flight(&self, in_flight: bool) {
        self.checkpoint_in_flight
            .store(in_flight, Ordering::Release);
        if !in_flight {
            let _guard = self.wakeup.lock();
            self.committed_changed.notify_all();
        }
    }

    /// Waits until checkpoint number `wanted` is written, or `timeout` passes.
    pub(crate) fn wait_for_checkpoint(&self, wanted: u64, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut guard = self.wakeup.lock();
        while self.checkpoints_written.load(Ordering::Acquire) < wanted {
            if self
                .applied_changed
                .wait_until(&mut guard, deadline)
                .timed_out()
            {
                return self.checkpoints_written.load(Ordering::Acquire) >= wanted;
            }
        }
        true
    }

    pub(crate) fn next_due_ms(&self) -> i64 {
        self.next_due_ms.load(Ordering::Acquire)
    }

    pub(crate) fn set_next_due_ms(&self, at_ms: Option<i64>) {
        self.next_due_ms
            .store(at_ms.unwrap_or(i64::MAX), Ordering::Release);
    }

    pub(crate) fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    pub(crate) fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    /// Events committed to the log but not yet applied (since start).
    pub(crate) fn apply_lag_events(&self) -> u64 {
        self.logged_events
            .load(Ordering::Acquire)
            .saturating_sub(self.applied_events.load(Ordering::Acquire))
    }

    pub(crate) fn is_recovered(&self) -> bool {
        self.recovered.load(Ordering::Acquire)
    }

    pub(crate) fn set_recovered(&self) {
        self.recovered.store(true, Ordering::Release);
    }

    pub(crate) fn is_log_closed(&self) -> bool {
        self.log_closed.load(Ordering::Acquire)
    }

    /// The log writer committed records up to `seq` holding `events` events.
    pub(crate) fn publish_committed(&self, seq: u64, events: u64) {
        self.logged_events.fetch_add(events, Ordering::AcqRel);
        self.committed.store(seq, Ordering::Release);
        let _guard = self.wakeup.lock();
        self.committed_changed.notify_all();
    }

    /// The log writer has stopped.
    pub(crate) fn close_log(&self) {
        self.log_closed.store(true, Ordering::Release);
        let _guard = self.wakeup.lock();
        self.committed_changed.notify_all();
    }

    /// The applier applied records up to `seq` holding `events` events.
    pub(crate) fn publish_applied(&self, seq: u64, events: u64) {
        self.applied_events.fetch_add(events, Ordering::AcqRel);
        self.applied.store(seq, Ordering::Release);
        let _guard = self.wakeup.lock();
        self.applied_changed.notify_all();
    }

    /// Waits until something beyond `applied` is committed, the log closes, or `timeout` passes.
    pub(crate) fn wait_for_commit(&self, applied: u64, timeout: Duration) {
        let mut guard = self.wakeup.lock();
        let checkpoint_due = self.checkpoint_requested() && !self.checkpoint_in_flight();
        if self.committed() > applied || self.is_log_closed() || checkpoint_due {
            return;
        }
        let _ = self.committed_changed.wait_for(&mut guard, timeout);
    }

    /// Waits until the applier has applied `seq`, or `timeout` passes; returns whether it has.
    pub(crate) fn wait_for_applied(&self, seq: u64, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut guard = self.wakeup.lock();
        while self.applied() < seq {
            if self
                .applied_changed
                .wait_until(&mut guard, deadline)
                .timed_out()
            {
                return self.applied() >= seq;
            }
        }
        true
    }
}
