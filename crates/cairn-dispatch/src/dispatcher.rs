//! The dispatcher's loop: outbox messages in, provider calls out, at most once per message id.
//!
//! Messages arrive from the engine's outbox feed (as the applier decides them), from a periodic read
//! of the checkpointed outbox (what the feed missed: a restart, a lagging feed) and from the retry
//! schedule. Each channel has a worker that takes them in batches:
//!
//! 1. drops messages the delivery store already finished (a replay re-produces the same ids);
//! 2. composes each one (template, recipient, tracking); a message that cannot be composed fails
//!    for good;
//! 3. **records the attempt** for the whole batch in one durable transaction;
//! 4. sends (bounded concurrency, the provider's rate limit, the message id as idempotency key);
//! 5. **records the results** in one durable transaction: sent, retry later (exponential backoff with
//!    jitter), failed, dead (out of attempts), or — for a timeout after sending — the channel's
//!    in-doubt policy;
//! 6. submits feedback events (`Email Sent`, `SMS Failed`, `Webhook Responded`) to the engine.
//!
//! A crash between 3 and 5 leaves the batch "attempting": at the next start each such message is in
//! doubt and the channel's policy resends it (providers that honour the idempotency key) or drops it,
//! and the metrics count both.

use crate::activity::ActivitySender;
use crate::activity_worker;
use crate::compose::{compose, ComposeError, Inputs};
use crate::feedback;
use crate::options::DispatchOptions;
use crate::DispatchError;
use cairn_channels::{ChannelError, ChannelProvider, OutboundMessage, ProviderReceipt};
use cairn_delivery::{
    Channel, FailureClass, FeedbackKind, GiveUpReason, InDoubtPolicy, RetryDecision, TokenBucket,
    TrackingSigner,
};
use cairn_engine::activity::ACTIVITY_CHANNEL;
use cairn_engine::federated::{FETCH_CHANNEL, WRITE_BACK_CHANNEL};
use cairn_engine::{Clock, Engine, Ingestor, Metrics, Reader, WEBHOOK_RESPONDED};
use cairn_model::{NormalizedMessage, ProfileId, WorkspaceId};
use cairn_storage::{DeliveryRecord, DeliveryState, DeliveryStore, OutboxRow};
use cairn_template::{compile, CompiledTemplate, VariableSchema};
use parking_lot::Mutex;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};

/// The mark holding how far the checkpointed outbox has been read (ms of decision time).
const OUTBOX_MARK: &str = "outbox_read_ms";
/// How far back each read of the checkpointed outbox starts before the mark (rows become visible
/// at checkpoints, possibly out of order).
const OUTBOX_OVERLAP_MS: i64 = 120_000;
/// Most rows one read of the checkpointed outbox takes.
const OUTBOX_READ_LIMIT: usize = 5_000;
/// Longest wait for more messages before a partial batch goes.
const BATCH_WAIT: Duration = Duration::from_millis(2);

/// One message to work on.
#[derive(Debug, Clone)]
pub(crate) struct Work {
    pub row: OutboxRow,
    /// Attempts already made.
    pub attempts: u32,
    /// Whether this is a scheduled retry or an in-doubt resend (then a `retrying`/`attempting`
    /// record is expected).
    pub again: bool,
}

/// A channel's provider and limits.
struct ChannelRuntime {
    provider: Arc<dyn ChannelProvider>,
    in_doubt: InDoubtPolicy,
    bucket: Option<Mutex<TokenBucket>>,
    concurrency: Arc<Semaphore>,
}

/// What every task shares.
pub(crate) struct Shared {
    pub options: DispatchOptions,
    pub reader: Reader,
    pub ingestor: Ingestor,
    pub store: Arc<dyn DeliveryStore>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    channels: HashMap<Channel, ChannelRuntime>,
    signer: Option<TrackingSigner>,
    templates: Mutex<HashMap<(WorkspaceId, String, u32), Arc<CompiledTemplate>>>,
    /// Federated attribute sets per workspace, for templates that read `federated.*`.
    pub federated: crate::federated::FederatedByWorkspace,
    /// Message ids queued or being worked on in this process.
    in_flight: Mutex<HashSet<String>>,
    queues: HashMap<Channel, mpsc::UnboundedSender<Work>>,
    /// The activity feed's subscriptions, in configuration order.
    pub activity: Vec<ActivitySender>,
    activity_queue: mpsc::UnboundedSender<Work>,
    write_back_queue: mpsc::UnboundedSender<Work>,
    fetch_queue: mpsc::UnboundedSender<Work>,
}

/// Each channel's queue, and the activity feed's, as their workers receive them.
pub(crate) struct Queues {
    pub channels: HashMap<Channel, mpsc::UnboundedReceiver<Work>>,
    pub activity: mpsc::UnboundedReceiver<Work>,
    pub write_back: mpsc::UnboundedReceiver<Work>,
    pub fetch: mpsc::UnboundedReceiver<Work>,
}

/// A composed message and the profile it goes to, or why it cannot be composed.
type Composed = Result<(OutboundMessage, ProfileId), ComposeError>;

pub(crate) const CHANNELS: [Channel; 4] = [
    Channel::Email,
    Channel::Sms,
    Channel::Push,
    Channel::Webhook,
];

impl Shared {
    pub(crate) fn new(
        options: DispatchOptions,
        engine: &Engine,
        federated: crate::federated::FederatedByWorkspace,
    ) -> Result<(Arc<Shared>, Queues), DispatchError> {
        let clock = engine.clock();
        let now_ms = clock.now().timestamp_millis();
        let mut channels = HashMap::new();
        for channel in CHANNELS {
            let Some(settings) = options.channel(channel) else {
                continue;
            };
            let provider = settings
                .provider
                .build(Arc::new(cairn_channels::SystemWallClock))
                .map_err(|error| DispatchError::Config(format!("{}: {error}", channel.as_str())))?;
            let bucket = match settings.rate_per_second {
                Some(rate) => Some(Mutex::new(
                    TokenBucket::new(rate, rate, now_ms)
                        .map_err(|error| DispatchError::Config(error.to_string()))?,
                )),
                None => None,
            };
            let in_doubt =
                options.in_doubt(channel, provider.capabilities().honors_idempotency_key);
            channels.insert(
                channel,
                ChannelRuntime {
                    provider,
                    in_doubt,
                    bucket,
                    concurrency: Arc::new(Semaphore::new(settings.concurrency.max(1))),
                },
            );
        }
        let signer = match &options.tracking {
            Some(tracking) => Some(
                tracking
                    .signer()
                    .map_err(|error| DispatchError::Config(format!("tracking: {error}")))?,
            ),
            None => None,
        };
        let activity = options
            .activity
            .iter()
            .enumerate()
            .map(|(index, subscription)| {
                ActivitySender::new(
                    subscription.clone(),
                    index,
                    Arc::new(cairn_channels::SystemWallClock),
                )
                .map_err(|error| DispatchError::Config(error.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut queues = HashMap::new();
        let mut receivers = HashMap::new();
        for channel in CHANNELS {
            let (sender, receiver) = mpsc::unbounded_channel();
            queues.insert(channel, sender);
            receivers.insert(channel, receiver);
        }
        let (activity_queue, activity_receiver) = mpsc::unbounded_channel();
        let (write_back_queue, write_back_receiver) = mpsc::unbounded_channel();
        let (fetch_queue, fetch_receiver) = mpsc::unbounded_channel();
        Ok((
            Arc::new(Shared {
                options,
                reader: engine.reader(),
                ingestor: engine.ingestor(),
                store: engine.delivery_store(),
                metrics: engine.metrics(),
                clock,
                channels,
                signer,
                templates: Mutex::new(HashMap::new()),
                federated,
                in_flight: Mutex::new(HashSet::new()),
                queues,
                activity,
                activity_queue,
                write_back_queue,
                fetch_queue,
            }),
            Queues {
                channels: receivers,
                activity: activity_receiver,
                write_back: write_back_receiver,
                fetch: fetch_receiver,
            },
        ))
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    /// Queues the deliveries of an outbox row (a message is one, an activity item one per
    /// subscription that wants it), each unless this process already works on it.
    pub(crate) fn enqueue(&self, work: Work) {
        let Work {
            row,
            attempts,
            again,
        } = work;
        for row in self.deliveries(row) {
            self.enqueue_delivery(Work {
                row,
                attempts,
                again,
            });
        }
    }

    /// The deliveries an outbox row stands for (a row already fanned out stands for itself).
    fn deliveries(&self, row: OutboxRow) -> Vec<OutboxRow> {
        match row.channel == ACTIVITY_CHANNEL {
            true => activity_worker::fan_out(&row, &self.activity),
            false => vec![row],
        }
    }

    fn enqueue_delivery(&self, work: Work) {
        let queue = match work.row.channel.as_str() {
            ACTIVITY_CHANNEL => Some(&self.activity_queue),
            WRITE_BACK_CHANNEL => Some(&self.write_back_queue),
            FETCH_CHANNEL => Some(&self.fetch_queue),
            name => match Channel::parse(name) {
                Some(channel) => self.queues.get(&channel),
                None => {
                    tracing::warn!(message = %work.row.message_id, channel = %name, "unknown channel");
                    return;
                }
            },
        };
        let Some(queue) = queue else {
            return;
        };
        if self.in_flight.lock().insert(work.row.message_id.clone()) {
            let _ = queue.send(work);
        }
    }

    pub(crate) fn release(&self, message_id: &str) {
        self.in_flight.lock().remove(message_id);
    }

    /// Reads the checkpointed outbox from the mark and queues what is not finished yet.
    pub(crate) fn catch_up(&self) -> Result<(), DispatchError> {
        let mark = self.store.mark(OUTBOX_MARK)?.unwrap_or(i64::MIN);
        let since = mark.saturating_sub(OUTBOX_OVERLAP_MS);
        let rows = self.reader.ready_outbox(since, OUTBOX_READ_LIMIT)?;
        let Some(newest) = rows.iter().map(|row| row.at_ms).max() else {
            return Ok(());
        };
        let rows: Vec<OutboxRow> = rows
            .into_iter()
            .flat_map(|row| self.deliveries(row))
            .collect();
        let ids: Vec<String> = rows.iter().map(|row| row.message_id.clone()).collect();
        let known: HashSet<String> = self
            .store
            .get(&ids)?
            .into_iter()
            .map(|record| record.message_id)
            .collect();
        for row in rows {
            if !known.contains(&row.message_id) {
                self.enqueue(Work {
                    row,
                    attempts: 0,
                    again: false,
                });
            }
        }
        self.store.set_mark(OUTBOX_MARK, mark.max(newest))?;
        Ok(())
    }

    /// Queues retries that are due.
    pub(crate) fn queue_due_retries(&self) -> Result<(), DispatchError> {
        for record in self.store.due_retries(self.now_ms(), 1_000)? {
            if let Some(row) = row_of(&record) {
                self.enqueue(Work {
                    row,
                    attempts: record.attempts,
                    again: true,
                });
            }
        }
        Ok(())
    }

    /// At start: attempts a crash left without a result are in doubt; each channel's policy resends
    /// or drops them.
    pub(crate) fn recover_in_doubt(&self) -> Result<(), DispatchError> {
        loop {
            let stuck = self.store.in_state(DeliveryState::Attempting, 1_000)?;
            if stuck.is_empty() {
                return Ok(());
            }
            let mut dropped = Vec::new();
            for mut record in stuck {
                let policy = self.in_doubt_policy(&record.channel);
                match (policy, row_of(&record)) {
                    (InDoubtPolicy::Resend, Some(row)) => {
                        self.metrics.in_doubt(&record.channel, "resend");
                        record.state = DeliveryState::Retrying;
                        record.next_attempt_at_ms = Some(self.now_ms());
                        record.last_error = Some("in doubt after a restart: sent again".into());
                        self.store.record(std::slice::from_ref(&record))?;
                        self.enqueue(Work {
                            row,
                            attempts: record.attempts,
                            again: true,
                        });
                    }
                    _ => {
                        self.metrics.in_doubt(&record.channel, "drop");
                        record.state = DeliveryState::Dropped;
                        record.last_error = Some("in doubt after a restart: dropped".into());
                        record.updated_at_ms = self.now_ms();
                        dropped.push(record);
                    }
                }
            }
            self.store.record(&dropped)?;
        }
    }

    /// What to do with a message of `channel` left in doubt: activity items carry an idempotency key
    /// their receivers are asked to honour, a write-back sets a value (doing it twice is doing it
    /// once) and a fetch only reads, so all three are done again.
    pub(crate) fn in_doubt_policy(&self, channel: &str) -> InDoubtPolicy {
        if [ACTIVITY_CHANNEL, WRITE_BACK_CHANNEL, FETCH_CHANNEL].contains(&channel) {
            return InDoubtPolicy::Resend;
        }
        Channel::parse(channel)
            .and_then(|channel| self.channels.get(&channel))
            .map_or(InDoubtPolicy::Drop, |runtime| runtime.in_doubt)
    }

    /// The latest published version of a template, compiled (cached per version).
    fn template(
        &self,
        workspace: &WorkspaceId,
        id: &str,
    ) -> Result<Arc<CompiledTemplate>, ComposeError> {
        let history = self
            .reader
            .template_now(workspace, id)
            .ok_or_else(|| ComposeError::UnknownTemplate(id.to_string()))?;
        let published = history
            .latest()
            .ok_or_else(|| ComposeError::UnknownTemplate(id.to_string()))?;
        let key = (workspace.clone(), id.to_string(), published.version);
        if let Some(compiled) = self.templates.lock().get(&key) {
            return Ok(compiled.clone());
        }
        let schema =
            VariableSchema::from_paths(["profile.*", "event.*", "journey.*", "federated.*"]);
        let compiled = Arc::new(
            compile(&published.document, &schema)
                .map_err(|error| ComposeError::Render(error.to_string()))?,
        );
        self.templates.lock().insert(key, compiled.clone());
        Ok(compiled)
    }
}

/// The outbox row kept with a delivery record.
fn row_of(record: &DeliveryRecord) -> Option<OutboxRow> {
    serde_json::from_str::<Value>(&record.outbox)
        .ok()
        .map(|body| OutboxRow {
            message_id: record.message_id.clone(),
            workspace: record.workspace.clone(),
            profile_rank: 0,
            journey_id: body["journey_id"].as_str().unwrap_or_default().to_string(),
            channel: record.channel.clone(),
            at_ms: body["at_ms"].as_i64().unwrap_or(0),
            status: "ready".into(),
            body: record.outbox.clone(),
        })
}

/// What came of one message.
enum Outcome {
    Sent(ProviderReceipt),
    Failed(ChannelError),
    NotComposed(ComposeError),
}

/// A channel's worker: batches from its queue until the queue closes.
pub(crate) async fn channel_worker(
    shared: Arc<Shared>,
    channel: Channel,
    mut queue: mpsc::UnboundedReceiver<Work>,
) {
    while let Some(batch) = next_batch(&mut queue, shared.options.batch_size).await {
        if let Err(error) = process(&shared, channel, batch).await {
            tracing::error!(%error, channel = channel.as_str(), "a delivery batch failed; its messages will be retried");
        }
    }
}

/// The next batch from `queue`: what arrives within [`BATCH_WAIT`] of the first, at most `size`;
/// `None` once the queue closed.
pub(crate) async fn next_batch(
    queue: &mut mpsc::UnboundedReceiver<Work>,
    size: usize,
) -> Option<Vec<Work>> {
    let first = queue.recv().await?;
    let mut batch = vec![first];
    let deadline = tokio::time::Instant::now() + BATCH_WAIT;
    while batch.len() < size.max(1) {
        match tokio::time::timeout_at(deadline, queue.recv()).await {
            Ok(Some(work)) => batch.push(work),
            _ => break,
        }
    }
    Some(batch)
}

/// One batch: see the module documentation for the steps.
async fn process(
    shared: &Arc<Shared>,
    channel: Channel,
    batch: Vec<Work>,
) -> Result<(), DispatchError> {
    let todo = unfinished(shared, batch)?;
    if todo.is_empty() {
        return Ok(());
    }
    let now = shared.now_ms();
    let composed: Vec<(Work, Composed)> =
        futures::future::join_all(todo.into_iter().map(|work| async move {
            let message = compose_work(shared, channel, &work).await;
            (work, message)
        }))
        .await;
    let attempts: Vec<DeliveryRecord> = composed
        .iter()
        .map(|(work, message)| {
            let mut record = record_of(work, channel.as_str(), now);
            match message {
                Ok(_) => {
                    record.state = DeliveryState::Attempting;
                    record.attempts = work.attempts + 1;
                }
                Err(error) if error.is_transient() => {
                    record.state = DeliveryState::Attempting;
                    record.attempts = work.attempts + 1;
                }
                Err(error) => {
                    record.state = DeliveryState::Failed;
                    record.last_error = Some(format!("{}: {error}", error.code()));
                }
            }
            record
        })
        .collect();
    shared.store.record(&attempts)?;
    let runtime = shared.channels.get(&channel);
    let mut sends = Vec::with_capacity(composed.len());
    for (work, message) in composed {
        let shared = shared.clone();
        sends.push(async move {
            let outcome = match (message, runtime) {
                (Err(error), _) if error.is_transient() => (
                    Outcome::Failed(ChannelError::Transient {
                        retry_after: None,
                        reason: format!("{}: {error}", error.code()),
                    }),
                    None,
                    None,
                ),
                (Err(error), _) => (Outcome::NotComposed(error), None, None),
                (Ok((_, profile)), None) => (
                    Outcome::Failed(ChannelError::Permanent {
                        code: "invalid_channel_config".into(),
                        reason: format!("no provider is configured for {}", channel.as_str()),
                        invalid_recipient: false,
                    }),
                    Some(profile),
                    None,
                ),
                (Ok((outbound, profile)), Some(runtime)) => (
                    send(&shared, runtime, &outbound).await,
                    Some(profile),
                    Some(outbound.recipient().to_string()),
                ),
            };
            (work, outcome)
        });
    }
    let results = futures::future::join_all(sends).await;
    let now = shared.now_ms();
    let mut records = Vec::with_capacity(results.len());
    let mut events: HashMap<WorkspaceId, Vec<NormalizedMessage>> = HashMap::new();
    for (work, (outcome, profile, recipient)) in results {
        let sent_to = Recipient {
            profile,
            address: recipient.as_deref(),
        };
        let (record, event) = settle(shared, channel, &work, outcome, sent_to, now);
        if let Some(event) = event {
            events
                .entry(work.row.workspace.clone())
                .or_default()
                .push(event);
        }
        records.push(record);
    }
    shared.store.record(&records)?;
    for record in &records {
        shared.release(&record.message_id);
    }
    for (workspace, events) in events {
        if let Err(error) = shared.ingestor.submit(workspace, events).await {
            tracing::warn!(%error, "delivery feedback events could not be stored");
        }
    }
    Ok(())
}

/// The messages of `batch` still to work on: those the delivery store has not finished (a replay or
/// a catch-up re-produces finished ids). The others are released.
pub(crate) fn unfinished(shared: &Shared, batch: Vec<Work>) -> Result<Vec<Work>, DispatchError> {
    let ids: Vec<String> = batch
        .iter()
        .map(|work| work.row.message_id.clone())
        .collect();
    let known: HashMap<String, DeliveryRecord> = shared
        .store
        .get(&ids)?
        .into_iter()
        .map(|record| (record.message_id.clone(), record))
        .collect();
    let mut todo = Vec::with_capacity(batch.len());
    for work in batch {
        let skip = match known.get(&work.row.message_id) {
            None => false,
            Some(record) if record.state.is_final() => true,
            // A retry or a resend is expected to find its own record; anything else is a repeat.
            Some(_) => !work.again,
        };
        if skip {
            shared.release(&work.row.message_id);
        } else {
            todo.push(work);
        }
    }
    Ok(todo)
}

/// Composes a message: the profile as the state has it now, the template's latest version, the
/// federated attribute sets the template reads.
async fn compose_work(
    shared: &Shared,
    channel: Channel,
    work: &Work,
) -> Result<(OutboundMessage, ProfileId), ComposeError> {
    let outbox: Value = serde_json::from_str(&work.row.body)
        .map_err(|_| ComposeError::Malformed("the outbox body is not JSON"))?;
    let profile_text = outbox["profile_id"]
        .as_str()
        .ok_or(ComposeError::Malformed("no profile_id"))?;
    let profile_id =
        ProfileId::parse(profile_text).ok_or(ComposeError::Malformed("a bad profile_id"))?;
    let profile = shared
        .reader
        .profile_now(&work.row.workspace, &profile_id)
        .ok_or(ComposeError::Malformed("the profile is gone"))?;
    let template_id = outbox["template"]
        .as_str()
        .ok_or(ComposeError::Malformed("no template"))?;
    let template = shared.template(&work.row.workspace, template_id)?;
    let federated = if template.federated_reads().any() {
        let records = shared
            .reader
            .source_record_ids_now(&work.row.workspace, &profile.id);
        let attributes = shared.federated.get(&work.row.workspace).map(Arc::as_ref);
        crate::federated::values_for_template(attributes, &template, &records).await?
    } else {
        None
    };
    let settings = &outbox["settings"];
    let tracking = shared.options.tracking.as_ref();
    let message = compose(
        channel,
        &Inputs {
            outbox: &outbox,
            // The survivor's id: feedback goes to the profile as it is now.
            profile_id: &profile.id.to_string(),
            traits: &profile.traits,
            template: &template,
            federated: federated.as_ref(),
            signer: shared.signer.as_ref(),
            track_opens: tracking.is_some_and(|t| t.opens) && settings["track_opens"] != false,
            track_clicks: tracking.is_some_and(|t| t.clicks) && settings["track_clicks"] != false,
        },
    )?;
    Ok((message, profile.id))
}

/// Sends one message through the provider, within the channel's rate limit and concurrency.
async fn send(shared: &Shared, runtime: &ChannelRuntime, message: &OutboundMessage) -> Outcome {
    let _permit = runtime.concurrency.acquire().await;
    if let Some(bucket) = &runtime.bucket {
        loop {
            let ready = bucket.lock().try_acquire(shared.now_ms());
            match ready {
                Ok(()) => break,
                Err(ready_at_ms) => {
                    let wait = (ready_at_ms - shared.now_ms()).clamp(1, 1_000) as u64;
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
            }
        }
    }
    match runtime.provider.send(message, message.message_id()).await {
        Ok(receipt) => Outcome::Sent(receipt),
        Err(error) => Outcome::Failed(error),
    }
}

/// A record of `work` on `channel`, `attempting` as of `now`.
pub(crate) fn record_of(work: &Work, channel: &str, now: i64) -> DeliveryRecord {
    DeliveryRecord {
        message_id: work.row.message_id.clone(),
        workspace: work.row.workspace.clone(),
        channel: channel.to_string(),
        state: DeliveryState::Attempting,
        attempts: work.attempts,
        next_attempt_at_ms: None,
        provider: None,
        provider_message_id: None,
        last_error: None,
        updated_at_ms: now,
        outbox: work.row.body.clone(),
    }
}

/// Whom a sent (or attempted) message was for: the profile, and the address, number, device token
/// or URL it went to (none when it was never handed to a provider).
struct Recipient<'a> {
    profile: Option<ProfileId>,
    address: Option<&'a str>,
}

/// The record and the feedback event of one message's outcome.
fn settle(
    shared: &Shared,
    channel: Channel,
    work: &Work,
    outcome: Outcome,
    recipient: Recipient<'_>,
    now: i64,
) -> (DeliveryRecord, Option<NormalizedMessage>) {
    let profile = recipient.profile;
    let mut record = record_of(work, channel.as_str(), now);
    let journey = (!work.row.journey_id.is_empty()).then_some(work.row.journey_id.as_str());
    let message_id = work.row.message_id.as_str();
    let at = shared.clock.now();
    let channel_name = channel.as_str();
    let event = |kind: FeedbackKind, mut properties: Map<String, Value>, traits| {
        profile.map(|profile| {
            properties.insert("outcome".into(), kind.as_str().into());
            feedback::event(
                profile,
                &feedback::name(channel, kind),
                message_id,
                properties,
                traits,
                at,
            )
        })
    };
    let base =
        |provider: Option<&str>| feedback::properties(channel, message_id, journey, provider);
    match outcome {
        Outcome::Sent(receipt) => {
            record.state = DeliveryState::Sent;
            record.attempts = work.attempts + 1;
            record.provider = Some(receipt.provider.to_string());
            record.provider_message_id = receipt.provider_message_id.clone();
            shared.metrics.delivered(channel_name, "sent");
            let decided = work.row.at_ms;
            if decided > 0 && now >= decided {
                shared
                    .metrics
                    .delivery_seconds
                    .observe((now - decided) as f64 / 1_000.0);
            }
            let mut properties = base(Some(receipt.provider));
            if let Some(id) = &receipt.provider_message_id {
                properties.insert("provider_message_id".into(), id.clone().into());
            }
            if channel == Channel::Webhook {
                let attributes: Map<String, Value> = receipt.attributes.into_iter().collect();
                properties.insert("ok".into(), true.into());
                properties.insert("response".into(), Value::Object(attributes.clone()));
                let event = profile.map(|profile| {
                    feedback::event(
                        profile,
                        WEBHOOK_RESPONDED,
                        message_id,
                        properties,
                        Some(attributes),
                        at,
                    )
                });
                return (record, event);
            }
            (record, event(FeedbackKind::Sent, properties, None))
        }
        Outcome::NotComposed(error) => {
            record.state = DeliveryState::Failed;
            record.last_error = Some(format!("{}: {error}", error.code()));
            shared.metrics.delivered(channel_name, "failed");
            let mut properties = base(None);
            properties.insert("reason".into(), error.to_string().into());
            properties.insert("code".into(), error.code().into());
            (
                record,
                failure_event(channel, profile, message_id, properties, at),
            )
        }
        Outcome::Failed(error) => {
            record.attempts = work.attempts + 1;
            record.last_error = Some(error.to_string());
            let failure = error.failure_class();
            let in_doubt = shared
                .channels
                .get(&channel)
                .map_or(InDoubtPolicy::Drop, |runtime| runtime.in_doubt);
            if matches!(failure, FailureClass::InDoubt) {
                shared.metrics.in_doubt(
                    channel_name,
                    if in_doubt == InDoubtPolicy::Resend {
                        "resend"
                    } else {
                        "drop"
                    },
                );
            }
            let policy = cairn_delivery::RetryPolicy {
                in_doubt,
                ..shared.options.retry
            };
            match retry_or_give_up(&mut record, &policy, failure, now) {
                DeliveryState::Retrying => {
                    shared.metrics.delivered(channel_name, "retried");
                    (record, None)
                }
                _ => {
                    shared
                        .metrics
                        .delivered(channel_name, record.state.as_str());
                    if record.state == DeliveryState::Dropped {
                        return (record, None);
                    }
                    let mut properties = base(None);
                    properties.insert("reason".into(), error.to_string().into());
                    if let ChannelError::Permanent {
                        code,
                        invalid_recipient,
                        ..
                    } = &error
                    {
                        properties.insert("code".into(), code.clone().into());
                        properties.insert("invalid_recipient".into(), (*invalid_recipient).into());
                        if let (true, Some(address)) = (*invalid_recipient, recipient.address) {
                            properties.insert("recipient".into(), address.into());
                        }
                    }
                    properties.insert("state".into(), record.state.as_str().into());
                    (
                        record,
                        failure_event(channel, profile, message_id, properties, at),
                    )
                }
            }
        }
    }
}

/// After a failed attempt: schedules the next one (`retrying`, with backoff and jitter) or gives up
/// (`failed`, `dead`, `dropped`) as `policy` says; returns the new state.
pub(crate) fn retry_or_give_up(
    record: &mut DeliveryRecord,
    policy: &cairn_delivery::RetryPolicy,
    failure: FailureClass,
    now: i64,
) -> DeliveryState {
    let seed = cairn_delivery::retry::seed_for(&record.message_id);
    record.state = match policy.next(record.attempts, failure, seed, now) {
        RetryDecision::RetryAt { at_ms } => {
            record.next_attempt_at_ms = Some(at_ms);
            DeliveryState::Retrying
        }
        RetryDecision::GiveUp { reason } => match reason {
            GiveUpReason::Permanent => DeliveryState::Failed,
            GiveUpReason::AttemptsExhausted => DeliveryState::Dead,
            GiveUpReason::InDoubtDropped => DeliveryState::Dropped,
        },
    };
    record.state
}

/// `<Channel> Failed`; for a webhook an awaiting enrollment also needs `Webhook Responded` with
/// `ok: false`, which is what a failed webhook reports.
fn failure_event(
    channel: Channel,
    profile: Option<ProfileId>,
    message_id: &str,
    mut properties: Map<String, Value>,
    at: chrono::DateTime<chrono::Utc>,
) -> Option<NormalizedMessage> {
    let profile = profile?;
    properties.insert("outcome".into(), "failed".into());
    if channel == Channel::Webhook {
        properties.insert("ok".into(), false.into());
        return Some(feedback::event(
            profile,
            WEBHOOK_RESPONDED,
            message_id,
            properties,
            None,
            at,
        ));
    }
    Some(feedback::event(
        profile,
        &feedback::name(channel, FeedbackKind::Failed),
        message_id,
        properties,
        None,
        at,
    ))
}
