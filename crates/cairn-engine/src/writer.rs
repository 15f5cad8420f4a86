//! The single writer: group commit of queued requests, one transaction per group.
//!
//! Loop: block for the first queued request, drain whatever else is queued (up to
//! `max_commit_events`), apply every message inside one store transaction, commit durably, then answer
//! each request. If the commit fails, every request of the group is answered with the error and nothing
//! of the group is kept.

use crate::identity::IdentityResolver;
use crate::ingestor::{EngineError, Pending, Queue, Receipt};
use crate::metrics::Metrics;
use crate::Clock;
use crate::EngineOptions;
use cairn_core::identity::{ProfileHead, Target};
use cairn_core::traits::{apply_traits, merge_trait_sets};
use cairn_model::{NormalizedMessage, PartitionId, ProfileId, TraitSet, WorkspaceId};
use cairn_storage::{NewEvent, ProfileState, StorageResult, Store, WriteTxn};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// How many commits between two prunes of expired message ids.
const PRUNE_EVERY_COMMITS: u64 = 256;
/// Most message ids forgotten per prune (keeps each commit short).
const PRUNE_LIMIT: usize = 20_000;

pub(crate) fn spawn(
    options: EngineOptions,
    store: Box<dyn Store>,
    identity: Box<dyn IdentityResolver>,
    queue: Queue,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("cairn-writer".into())
        .spawn(move || {
            Writer {
                options,
                store,
                identity,
                queue,
                clock,
                metrics,
                commits: 0,
            }
            .run();
        })
}

struct Writer {
    options: EngineOptions,
    store: Box<dyn Store>,
    identity: Box<dyn IdentityResolver>,
    queue: Queue,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    commits: u64,
}

impl Writer {
    fn run(mut self) {
        while let Ok(first) = self.queue.receiver.recv() {
            let mut group = vec![first];
            let mut events = group[0].messages.len();
            while events < self.options.max_commit_events {
                match self.queue.receiver.try_recv() {
                    Ok(next) => {
                        events += next.messages.len();
                        group.push(next);
                    }
                    Err(_) => break,
                }
            }
            self.commit_group(group, events);
        }
    }

    fn commit_group(&mut self, group: Vec<Pending>, events: usize) {
        let started = Instant::now();
        self.commits += 1;
        let prune_before = self.commits.is_multiple_of(PRUNE_EVERY_COMMITS).then(|| {
            self.clock.now()
                - chrono::Duration::from_std(self.options.dedupe_window)
                    .unwrap_or(chrono::Duration::MAX)
        });
        let mut receipts = vec![Receipt::default(); group.len()];
        let mut merged = 0u64;
        let identity = &mut self.identity;
        let result = self.store.write(&mut |txn| {
            receipts
                .iter_mut()
                .for_each(|receipt| *receipt = Receipt::default());
            merged = 0;
            let mut batch = GroupState::default();
            for (pending, receipt) in group.iter().zip(receipts.iter_mut()) {
                for message in &pending.messages {
                    match apply_message(
                        txn,
                        identity.as_mut(),
                        &mut batch,
                        &pending.workspace,
                        message,
                    )? {
                        Applied::Stored { merges } => {
                            receipt.accepted += 1;
                            merged += merges;
                        }
                        Applied::Duplicate => receipt.duplicates += 1,
                    }
                }
            }
            batch.flush(txn)?;
            if let Some(before) = prune_before {
                txn.prune_message_ids(before, PRUNE_LIMIT)?;
            }
            Ok(())
        });
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
                let accepted: usize = receipts.iter().map(|r| r.accepted).sum();
                let duplicates: usize = receipts.iter().map(|r| r.duplicates).sum();
                self.metrics.events_accepted.inc_by(accepted as u64);
                self.metrics.events_duplicate.inc_by(duplicates as u64);
                self.metrics.profiles_merged.inc_by(merged);
                self.metrics.commits.inc();
                self.metrics.committed_events.inc_by(events as u64);
                for (pending, receipt) in group.into_iter().zip(receipts) {
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

enum Applied {
    Stored { merges: u64 },
    Duplicate,
}

/// Profiles touched by the current group, written back once at the end of it.
#[derive(Default)]
struct GroupState {
    profiles: HashMap<(WorkspaceId, ProfileId), ProfileState>,
}

impl GroupState {
    fn take(
        &mut self,
        txn: &mut dyn WriteTxn,
        workspace: &WorkspaceId,
        id: &ProfileId,
    ) -> StorageResult<Option<ProfileState>> {
        match self.profiles.remove(&(workspace.clone(), id.clone())) {
            Some(state) => Ok(Some(state)),
            None => txn.load_profile(workspace, id),
        }
    }

    /// The freshest head of a profile: the group's copy may hold a user id not yet written back.
    fn fresh_head(&self, workspace: &WorkspaceId, head: ProfileHead) -> ProfileHead {
        match self.profiles.get(&(workspace.clone(), head.id.clone())) {
            Some(state) => state.head.clone(),
            None => head,
        }
    }

    fn flush(&mut self, txn: &mut dyn WriteTxn) -> StorageResult<()> {
        for ((workspace, _), state) in self.profiles.drain() {
            txn.save_profile(&workspace, &state)?;
        }
        Ok(())
    }
}

fn apply_message(
    txn: &mut dyn WriteTxn,
    identity: &mut dyn IdentityResolver,
    batch: &mut GroupState,
    workspace: &WorkspaceId,
    message: &NormalizedMessage,
) -> StorageResult<Applied> {
    if !txn.claim_message_id(workspace, &message.message_id, message.received_at)? {
        return Ok(Applied::Duplicate);
    }
    let plan = {
        let mut lookup = |identifier: &cairn_model::Identifier| {
            Ok(txn
                .find_by_identifier(workspace, identifier)?
                .map(|head| batch.fresh_head(workspace, head)))
        };
        identity.resolve(workspace, message, &mut lookup)?
    };
    let Some(plan) = plan else {
        // Validation guarantees an identifier; a message without one is stored nowhere.
        debug_assert!(false, "a validated message has at least one identifier");
        return Ok(Applied::Duplicate);
    };
    let mut target = match &plan.target {
        Target::Existing(head) => batch.take(txn, workspace, &head.id)?,
        Target::New { id, .. } => batch.take(txn, workspace, id)?,
    };
    if target.is_none() {
        if let Target::New { id, user_id } = &plan.target {
            let rank =
                txn.create_profile(workspace, id, user_id.as_deref(), message.received_at)?;
            target = Some(ProfileState {
                head: ProfileHead {
                    id: id.clone(),
                    rank,
                    user_id: user_id.clone(),
                },
                partition: PartitionId::of(id),
                traits: TraitSet::default(),
                created_at: message.received_at,
                updated_at: message.received_at,
            });
        }
    }
    let Some(mut target) = target else {
        return Err(cairn_storage::StorageError::Corrupt(format!(
            "profile {} vanished",
            plan.target.id()
        )));
    };
    for loser in &plan.merge {
        if let Some(loser_state) = batch.take(txn, workspace, &loser.id)? {
            merge_trait_sets(&mut target.traits, &loser_state.traits);
        }
        txn.merge_profile(workspace, &loser.id, &target.head.id)?;
    }
    for identifier in &plan.link {
        txn.link_identifier(workspace, identifier, &target.head.id)?;
    }
    if plan.user_id.is_some() {
        target.head.user_id = plan.user_id.clone();
    }
    apply_traits(
        &mut target.traits,
        &message.traits,
        message.timestamp.timestamp_millis(),
    );
    target.updated_at = target.updated_at.max(message.received_at);
    txn.append_event(&NewEvent {
        workspace,
        partition: target.partition,
        profile: &target.head.id,
        kind: message.kind,
        message_id: &message.message_id,
        name: message.name.as_deref(),
        timestamp: message.timestamp,
        received_at: message.received_at,
        body: &message.body,
    })?;
    let merges = plan.merge.len() as u64;
    batch
        .profiles
        .insert((workspace.clone(), target.head.id.clone()), target);
    Ok(Applied::Stored { merges })
}
