//! The activity feed's delivery: each activity row of the engine's outbox fanned out to the
//! subscriptions that want it, then posted with the same durability as a message.
//!
//! One (item, subscription) pair is one delivery record, `<item id>@<subscription key>`, posted by
//! [`crate::internal_worker`], so the dispatcher's store, retries and dead letters work for it
//! unchanged:
//!
//! 1. drops pairs the store already finished (a replay or a catch-up re-produces the same ids);
//! 2. **records the attempt** for the batch in one durable transaction;
//! 3. posts each item, signed, with the item id as `Idempotency-Key`;
//! 4. **records the results**: sent, retry later (the dispatcher's backoff with jitter), failed
//!    (a permanent answer, a subscription no longer configured) or dead (out of attempts).
//!
//! A pair a crash left "attempting" is resent at the next start: receivers are asked to de-duplicate
//! by the idempotency key, so the feed is at least once, never lost.

use crate::activity::{ActivityItem, ActivitySender};
use crate::dispatcher::{record_of, retry_or_give_up, Shared, Work};
use crate::internal_worker::Settled;
use cairn_channels::ChannelError;
use cairn_engine::activity::ACTIVITY_CHANNEL;
use cairn_storage::{DeliveryRecord, DeliveryState, OutboxRow};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// One row per subscription that wants the item of `row` (a row already fanned out is kept as it is).
pub(crate) fn fan_out(row: &OutboxRow, subscriptions: &[ActivitySender]) -> Vec<OutboxRow> {
    let Ok(body) = serde_json::from_str::<Value>(&row.body) else {
        tracing::warn!(item = %row.message_id, "an activity row that is not JSON is skipped");
        return Vec::new();
    };
    if body.get("subscription").is_some() {
        return vec![row.clone()];
    }
    let Ok(item) = ActivityItem::deserialize(&body) else {
        tracing::warn!(item = %row.message_id, "an activity row that is not an item is skipped");
        return Vec::new();
    };
    subscriptions
        .iter()
        .filter(|sender| sender.subscription().matches(&item))
        .map(|sender| {
            let url = &sender.subscription().url;
            OutboxRow {
                message_id: format!("{}@{:016x}", row.message_id, subscription_key(url)),
                body: json!({"item": body, "subscription": url}).to_string(),
                ..row.clone()
            }
        })
        .collect()
}

/// A subscription's stable key in delivery ids: its URL hashed (order in the file may change).
fn subscription_key(url: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(url.as_bytes())
}

/// The item and the subscription a fanned-out row names.
fn target<'a>(
    shared: &'a Shared,
    row: &OutboxRow,
) -> Result<(ActivityItem, &'a ActivitySender), ChannelError> {
    let permanent = |code: &str, reason: String| ChannelError::Permanent {
        code: code.into(),
        reason,
        invalid_recipient: false,
    };
    let body: Value = serde_json::from_str(&row.body)
        .map_err(|error| permanent("invalid_body", error.to_string()))?;
    let item = ActivityItem::deserialize(&body["item"])
        .map_err(|error| permanent("invalid_body", error.to_string()))?;
    let url = body["subscription"].as_str().unwrap_or_default();
    let sender = shared
        .activity
        .iter()
        .find(|sender| sender.subscription().url == url)
        .ok_or_else(|| {
            permanent(
                "subscription_removed",
                format!("no [[delivery.activity]] subscription posts to {url} any more"),
            )
        })?;
    Ok((item, sender))
}

/// One post of an activity item to its subscription, and its record (run by the internal worker).
pub(crate) async fn post(shared: Arc<Shared>, work: Work) -> Settled {
    let result = match target(&shared, &work.row) {
        Ok((item, sender)) => sender.send(&item).await,
        Err(error) => Err(error),
    };
    (settle(&shared, &work, result, shared.now_ms()), None)
}

/// The record of one post's outcome.
fn settle(
    shared: &Shared,
    work: &Work,
    result: Result<(), ChannelError>,
    now: i64,
) -> DeliveryRecord {
    let mut record = record_of(work, ACTIVITY_CHANNEL, now);
    record.attempts = work.attempts + 1;
    let error = match result {
        Ok(()) => {
            record.state = DeliveryState::Sent;
            record.provider = Some("activity".into());
            return record;
        }
        Err(error) => error,
    };
    record.last_error = Some(error.to_string());
    let policy = cairn_delivery::RetryPolicy {
        in_doubt: shared.in_doubt_policy(ACTIVITY_CHANNEL),
        ..shared.options.retry
    };
    retry_or_give_up(&mut record, &policy, error.failure_class(), now);
    record
}
