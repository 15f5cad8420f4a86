//! The worker loop of the engine's internal outbox channels (`activity`, `write_back`,
//! `federated_fetch`): each row is one delivery record, so the dispatcher's store, retries and dead
//! letters work for them as for messages.
//!
//! Per batch: drop rows the store already finished (a replay or a catch-up re-produces the same
//! ids); **record the attempts** in one durable transaction; run each row's job; submit the events
//! the jobs produced (audits, answers) through the engine's ingestor — before the results, so a
//! crash between the two repeats the job and its event, which the engine drops as a duplicate;
//! then **record the results**.

use crate::dispatcher::{next_batch, record_of, unfinished, Shared, Work};
use crate::DispatchError;
use cairn_model::{NormalizedMessage, WorkspaceId};
use cairn_storage::DeliveryRecord;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::mpsc;

/// What a job made of one row: its delivery record and the event to add to the profile, if any.
pub(crate) type Settled = (DeliveryRecord, Option<NormalizedMessage>);

/// Works through `queue` with `job` until the queue closes.
pub(crate) async fn internal_worker<J, F>(
    shared: Arc<Shared>,
    mut queue: mpsc::UnboundedReceiver<Work>,
    channel: &'static str,
    job: J,
) where
    J: Fn(Arc<Shared>, Work) -> F,
    F: Future<Output = Settled>,
{
    while let Some(batch) = next_batch(&mut queue, shared.options.batch_size).await {
        if let Err(error) = process(&shared, batch, channel, &job).await {
            tracing::error!(%error, channel, "a batch failed; its rows will be tried again");
        }
    }
}

async fn process<J, F>(
    shared: &Arc<Shared>,
    batch: Vec<Work>,
    channel: &'static str,
    job: &J,
) -> Result<(), DispatchError>
where
    J: Fn(Arc<Shared>, Work) -> F,
    F: Future<Output = Settled>,
{
    let todo = unfinished(shared, batch)?;
    if todo.is_empty() {
        return Ok(());
    }
    let now = shared.now_ms();
    let attempts: Vec<DeliveryRecord> = todo
        .iter()
        .map(|work| {
            let mut record = record_of(work, channel, now);
            record.attempts = work.attempts + 1;
            record
        })
        .collect();
    shared.store.record(&attempts)?;
    let settled = futures::future::join_all(todo.into_iter().map(|work| job(shared.clone(), work)));
    let mut records = Vec::new();
    let mut events: HashMap<WorkspaceId, Vec<NormalizedMessage>> = HashMap::new();
    for (record, event) in settled.await {
        if let Some(event) = event {
            events
                .entry(record.workspace.clone())
                .or_default()
                .push(event);
        }
        records.push(record);
    }
    for (workspace, events) in events {
        shared.ingestor.submit(workspace, events).await?;
    }
    shared.store.record(&records)?;
    for record in &records {
        shared.release(&record.message_id);
        shared.metrics.delivered(channel, record.state.as_str());
    }
    Ok(())
}
