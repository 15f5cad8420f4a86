//! The single writer: group commit of queued requests, one transaction per group.
//!
//! Loop: block for the first queued request, drain whatever else is queued (up to
//! `max_commit_events`), apply every message inside one store transaction, commit durably, then answer
//! each request. If the commit fails, every request of the group is answered with the error and nothing
//! of the group is kept.

use crate::dedupe::{self, GroupClaims, RecentMessageIds};
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

pub(crate) fn spawn(
    options: EngineOptions,
    store: Box<dyn Store>,
    identity: Box<dyn IdentityResolver>,
    queue: Queue,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let mut store = store;
    let recent =
        rebuild_recent_ids(&options, store.as_mut(), clock.now()).map_err(std::io::Error::other)?;
    std::thread::Builder::new()
        .name("cairn-writer".into())
        .spawn(move || {
            Writer {
                options,
                store,
                identity,
                queue,
                metrics,
                recent,
            }
            .run();
        })
}

struct Writer {
    options: EngineOptions,
    store: Box<dyn Store>,
    identity: Box<dyn IdentityResolver>,
    queue: Queue,
    metrics: Arc<Metrics>,
    recent: RecentMessageIds,
}

/// Rebuilds the de-duplication window from the message ids of the stored events.
fn rebuild_recent_ids(
    options: &EngineOptions,
    store: &mut dyn Store,
    now: chrono::DateTime<chrono::Utc>,
) -> StorageResult<RecentMessageIds> {
    let window = chrono::Duration::from_std(options.dedupe_window).unwrap_or(chrono::Duration::MAX);
    let mut recent = RecentMessageIds::new(window.num_milliseconds(), options.dedupe_max_entries);
    let since = now
        .checked_sub_signed(window)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    let mut ids = store.recent_message_ids(since, options.dedupe_max_entries)?;
    ids.reverse();
    for id in ids {
        recent.insert(
            dedupe::key(&id.workspace, &id.message_id),
            id.received_at.timestamp_millis(),
        );
    }
    tracing::info!(
        remembered = recent.len(),
        "message-id de-duplication window rebuilt"
    );
    Ok(recent)
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
        let mut receipts = vec![Receipt::default(); group.len()];
        let mut merged = 0u64;
        let identity = &mut self.identity;
        let recent = &self.recent;
        let mut claims = GroupClaims::default();
        let result = self.store.write(&mut |txn| {
            claims = GroupClaims::default();
            receipts
                .iter_mut()
                .for_each(|receipt| *receipt = Receipt::default());
            merged = 0;
            let mut batch = GroupState {
                profiles: HashMap::new(),
                claims: &mut claims,
                recent,
            };
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
            batch.flush(txn)
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
                claims.commit_into(&mut self.recent);
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

/// What the current group has touched: profiles (written back once at its end, and only if changed)
/// and claimed message ids.
struct GroupState<'g> {
    profiles: HashMap<(WorkspaceId, ProfileId), Touched>,
    claims: &'g mut GroupClaims,
    recent: &'g RecentMessageIds,
}

/// A profile loaded into the group, and whether anything of it changed.
struct Touched {
    state: ProfileState,
    changed: bool,
}

impl GroupState<'_> {
    fn take(
        &mut self,
        txn: &mut dyn WriteTxn,
        workspace: &WorkspaceId,
        id: &ProfileId,
    ) -> StorageResult<Option<Touched>> {
        match self.profiles.remove(&(workspace.clone(), id.clone())) {
            Some(touched) => Ok(Some(touched)),
            None => Ok(txn.load_profile(workspace, id)?.map(|state| Touched {
                state,
                changed: false,
            })),
        }
    }

    /// The freshest head of a profile: the group's copy may hold a user id not yet written back.
    fn fresh_head(&self, workspace: &WorkspaceId, head: ProfileHead) -> ProfileHead {
        match self.profiles.get(&(workspace.clone(), head.id.clone())) {
            Some(touched) => touched.state.head.clone(),
            None => head,
        }
    }

    fn flush(&mut self, txn: &mut dyn WriteTxn) -> StorageResult<()> {
        for ((workspace, _), touched) in self.profiles.drain() {
            if touched.changed {
                txn.save_profile(&workspace, &touched.state)?;
            }
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
    let claim = dedupe::key(workspace, &message.message_id);
    if !batch
        .claims
        .claim(batch.recent, claim, message.received_at.timestamp_millis())
    {
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
            target = Some(Touched {
                state: ProfileState {
                    head: ProfileHead {
                        id: id.clone(),
                        rank,
                        user_id: user_id.clone(),
                    },
                    partition: PartitionId::of(id),
                    traits: TraitSet::default(),
                    created_at: message.received_at,
                    updated_at: message.received_at,
                },
                changed: true,
            });
        }
    }
    let Some(Touched {
        state: mut target,
        mut changed,
    }) = target
    else {
        return Err(cairn_storage::StorageError::Corrupt(format!(
            "profile {} vanished",
            plan.target.id()
        )));
    };
    for loser in &plan.merge {
        if let Some(loser) = batch.take(txn, workspace, &loser.id)? {
            merge_trait_sets(&mut target.traits, &loser.state.traits);
        }
        txn.merge_profile(workspace, &loser.id, &target.head.id)?;
        changed = true;
    }
    for identifier in &plan.link {
        txn.link_identifier(workspace, identifier, &target.head.id)?;
    }
    if plan.user_id.is_some() && plan.user_id != target.head.user_id {
        target.head.user_id = plan.user_id.clone();
        changed = true;
    }
    changed |= apply_traits(
        &mut target.traits,
        &message.traits,
        message.timestamp.timestamp_millis(),
    );
    if changed {
        target.updated_at = target.updated_at.max(message.received_at);
    }
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
    batch.profiles.insert(
        (workspace.clone(), target.head.id.clone()),
        Touched {
            state: target,
            changed,
        },
    );
    Ok(Applied::Stored { merges })
}
