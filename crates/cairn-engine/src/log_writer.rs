//! The log writer: group commit of queued requests into the input log.
//!
//! Loop: block for the first queued request, drain whatever else is queued (up to
//! `max_commit_events`), drop messages whose id is already in the de-duplication window (or earlier
//! in the group), append one log record per request in one transaction, commit durably, then answer
//! each request and tell the applier. If the commit fails, every request of the group is answered
//! with the error and nothing of the group is kept.

use crate::dedupe::{GroupClaims, RecentMessageIds};
use crate::ingestor::{EngineError, Pending, PendingInput, Queue, Receipt};
use crate::metrics::Metrics;
use crate::progress::Progress;
use crate::EngineOptions;
use cairn_storage::{LogRecord, LogWriter, RecordKind};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

pub(crate) struct LogWriterThread {
    pub options: EngineOptions,
    pub log: Box<dyn LogWriter>,
    pub queue: Queue,
    pub recent: RecentMessageIds,
    pub progress: Arc<Progress>,
    pub metrics: Arc<Metrics>,
}

impl LogWriterThread {
    /// The log record of one input (none when every message is a duplicate) and its receipt.
    fn record_of(
        &self,
        pending: &Pending,
        claims: &mut GroupClaims,
    ) -> (Receipt, Option<LogRecord>) {
        let record = |kind, count, keys, payload| LogRecord {
            seq: 0,
            kind,
            workspace: pending.workspace.clone(),
            received_at_ms: pending.received_at_ms,
            count,
            keys,
            payload,
        };
        match &pending.input {
            PendingInput::Messages { keys, request } => {
                let fresh: Vec<bool> = keys
                    .iter()
                    .map(|key| claims.claim(&self.recent, *key, pending.received_at_ms))
                    .collect();
                let accepted = fresh.iter().filter(|fresh| **fresh).count();
                let receipt = Receipt {
                    accepted,
                    duplicates: fresh.len() - accepted,
                    seq: 0,
                };
                if accepted == 0 {
                    return (receipt, None);
                }
                let kept = keys
                    .iter()
                    .zip(&fresh)
                    .filter(|(_, fresh)| **fresh)
                    .map(|(key, _)| *key)
                    .collect();
                let payload = request.payload(|index| fresh[index]);
                (
                    receipt,
                    Some(record(RecordKind::Messages, accepted as u32, kept, payload)),
                )
            }
            PendingInput::Command(payload) => (
                Receipt::default(),
                Some(record(RecordKind::Command, 0, Vec::new(), payload.clone())),
            ),
            PendingInput::Tick => (
                Receipt::default(),
                Some(record(RecordKind::Tick, 0, Vec::new(), Vec::new())),
            ),
        }
    }

    pub(crate) fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("cairn-log".into())
            .spawn(move || self.run())
    }

    fn run(mut self) {
        while let Ok(first) = self.queue.receiver.recv() {
            if let Some(gate) = &self.options.log_gate {
                gate.pass();
            }
            let mut events = first.events();
            let mut group = vec![first];
            while events < self.options.max_commit_events {
                match self.queue.receiver.try_recv() {
                    Ok(next) => {
                        events += next.events();
                        group.push(next);
                    }
                    Err(_) => break,
                }
            }
            self.commit_group(group, events);
        }
        self.progress.close_log();
    }

    fn commit_group(&mut self, group: Vec<Pending>, events: usize) {
        let started = Instant::now();
        let mut claims = GroupClaims::default();
        let mut receipts = Vec::with_capacity(group.len());
        let mut records = Vec::with_capacity(group.len());
        let mut record_of_request = Vec::with_capacity(group.len());
        for pending in &group {
            let (receipt, record) = self.record_of(pending, &mut claims);
            receipts.push(receipt);
            record_of_request.push(record.map(|record| {
                records.push(record);
                records.len() - 1
            }));
        }
        let result = if records.is_empty() {
            Ok(())
        } else {
            self.log.append(&mut records)
        };
        self.queue.queued_events.fetch_sub(events, Ordering::AcqRel);
        self.metrics
            .queue_events
            .set(self.queue.queued_events.load(Ordering::Acquire) as i64);
        self.metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.commit_events.observe(events as f64);
        match result {
            Ok(()) => {
                claims.commit_into(&mut self.recent);
                self.metrics
                    .dedupe_window_bytes
                    .set(i64::try_from(self.recent.heap_bytes()).unwrap_or(i64::MAX));
                let accepted: usize = receipts.iter().map(|r| r.accepted).sum();
                let logged: u64 = records.iter().map(|record| u64::from(record.count)).sum();
                let duplicates: usize = receipts.iter().map(|r| r.duplicates).sum();
                self.metrics.events_accepted.inc_by(accepted as u64);
                self.metrics.events_duplicate.inc_by(duplicates as u64);
                self.metrics.commits.inc();
                self.metrics.committed_events.inc_by(events as u64);
                if let Some(last) = records.last() {
                    self.progress.publish_committed(last.seq, logged);
                }
                for ((pending, mut receipt), record) in
                    group.into_iter().zip(receipts).zip(record_of_request)
                {
                    receipt.seq = record.map_or(0, |index| records[index].seq);
                    let _ = pending.reply.send(Ok(receipt));
                }
            }
            Err(error) => {
                tracing::error!(%error, events, "group commit failed; nothing of it was kept");
                self.metrics.commit_failures.inc();
                let error = Arc::new(error);
                for pending in group {
                    let _ = pending.reply.send(Err(EngineError::Storage(error.clone())));
                }
            }
        }
    }
}
