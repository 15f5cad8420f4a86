//! Write-backs: the fields journeys' `update_profile` steps write to federated attribute sources
//! (`write_back: {loyalty.tier: "'gold'"}`), performed durably and audited.
//!
//! A write-back is a row of the engine's internal `write_back` channel, run by
//! [`crate::internal_worker`] (attempt recorded, job, event, result recorded). The job writes the
//! field through `cairn-federated` (the profile's record of the set's source, the set's timeout;
//! the cached values of that record are dropped) and makes the **audit** an event on the profile:
//! `Write Back Applied` (source, record id, field, previous cached value, new value, actor, rows) or
//! `Write Back Failed` (why, and whether it will be tried again). The result: applied, retry later
//! (a source that is down or slow), failed (no such set, no record of its source) or dead (out of
//! attempts).
//!
//! The audit goes in before the result, so a crash between them repeats the write (a `set` of the
//! same value) and the event, which the engine drops as a duplicate: a write-back is at least once
//! and never unaudited.

use crate::dispatcher::{record_of, retry_or_give_up, Shared, Work};
use crate::feedback;
use crate::internal_worker::Settled;
use cairn_delivery::FailureClass;
use cairn_engine::federated::WRITE_BACK_CHANNEL;
use cairn_federated::{AuditRecord, FederatedError, WriteOutcome};
use cairn_model::ProfileId;
use cairn_storage::DeliveryState;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::sync::Arc;

/// The event a write-back that reached its source adds to the profile's timeline.
pub const WRITE_BACK_APPLIED: &str = "Write Back Applied";
/// The event of a write-back that failed for good, or will be tried again.
pub const WRITE_BACK_FAILED: &str = "Write Back Failed";

/// What the engine's outbox row of a write-back says.
#[derive(Debug, Deserialize)]
struct Request {
    profile_id: String,
    #[serde(default)]
    journey_id: String,
    #[serde(default)]
    step_id: String,
    set: String,
    field: String,
    value: Value,
}

impl Request {
    /// Who asked, as the audit names it.
    fn actor(&self) -> String {
        format!("journey:{}/step:{}", self.journey_id, self.step_id)
    }
}

/// Why a write-back did not apply: `retry` when trying again later may help.
struct Failure {
    code: &'static str,
    reason: String,
    retry: bool,
}

impl Failure {
    fn permanent(code: &'static str, reason: impl Into<String>) -> Failure {
        Failure {
            code,
            reason: reason.into(),
            retry: false,
        }
    }
}

/// One write-back: the write, its record and its audit event (run by the internal worker).
pub(crate) async fn write_back(shared: Arc<Shared>, work: Work) -> Settled {
    let (request, profile, outcome) = match serde_json::from_str::<Request>(&work.row.body) {
        Ok(request) => {
            let (profile, outcome) = perform(&shared, &work, &request).await;
            (Some(request), profile, outcome)
        }
        Err(error) => {
            let failure = Failure::permanent("invalid_body", error.to_string());
            (None, None, Err(failure))
        }
    };
    settle(&shared, &work, request.as_ref(), profile, outcome)
}

/// Writes the field for the profile's record of the set's source; the profile (as it is now) the
/// audit goes to, when it is still there.
async fn perform(
    shared: &Shared,
    work: &Work,
    request: &Request,
) -> (Option<ProfileId>, Result<AuditRecord, Failure>) {
    let workspace = &work.row.workspace;
    let Some(profile) = ProfileId::parse(&request.profile_id)
        .and_then(|id| shared.reader.profile_now(workspace, &id))
    else {
        return (
            None,
            Err(Failure::permanent(
                "record_not_found",
                "the profile is gone",
            )),
        );
    };
    let Some(attributes) = shared.federated.get(workspace) else {
        let failure = Failure::permanent(
            "invalid_config",
            format!(
                "the workspace declares no federated attribute set `{}`",
                request.set
            ),
        );
        return (Some(profile.id), Err(failure));
    };
    let records = shared.reader.source_record_ids_now(workspace, &profile.id);
    let Some(source_id) = attributes.record_for(&request.set, &records) else {
        let source = attributes.source_of(&request.set).unwrap_or("?");
        let failure = Failure::permanent(
            "record_not_found",
            format!(
                "the profile has no record of source `{source}`, which `{}` reads",
                request.set
            ),
        );
        return (Some(profile.id), Err(failure));
    };
    let written = attributes
        .write_back(
            &request.set,
            source_id,
            &request.field,
            request.value.clone(),
            &request.actor(),
        )
        .await;
    let outcome = written.map_err(|error| Failure {
        code: error.error_code_name(),
        reason: error.to_string(),
        retry: matches!(
            error,
            FederatedError::WriteBack { .. }
                | FederatedError::Timeout { .. }
                | FederatedError::Source { .. }
        ),
    });
    (Some(profile.id), outcome)
}

/// The record and the audit event of one write-back's outcome.
fn settle(
    shared: &Shared,
    work: &Work,
    request: Option<&Request>,
    profile: Option<ProfileId>,
    outcome: Result<AuditRecord, Failure>,
) -> Settled {
    let now = shared.now_ms();
    let mut record = record_of(work, WRITE_BACK_CHANNEL, now);
    record.attempts = work.attempts + 1;
    let at = shared.clock.now();
    let event = |name: &str, id: &str, properties: Map<String, Value>| {
        profile.map(|profile| feedback::event(profile, name, id, properties, None, at))
    };
    let journey_id = request.map_or("", |request| request.journey_id.as_str());
    let failure = match outcome {
        Ok(audit) => {
            record.state = DeliveryState::Sent;
            record.provider = Some(audit.source.clone());
            record.provider_message_id = Some(audit.source_id.clone());
            let properties = applied_properties(&work.row.message_id, journey_id, &audit);
            let event = event(WRITE_BACK_APPLIED, &work.row.message_id, properties);
            return (record, event);
        }
        Err(failure) => failure,
    };
    record.last_error = Some(format!("{}: {}", failure.code, failure.reason));
    let class = match failure.retry {
        true => FailureClass::Transient {
            retry_after_ms: None,
        },
        false => FailureClass::Permanent,
    };
    let policy = cairn_delivery::RetryPolicy {
        in_doubt: shared.in_doubt_policy(WRITE_BACK_CHANNEL),
        ..shared.options.retry
    };
    let state = retry_or_give_up(&mut record, &policy, class, now);
    let mut properties = Map::new();
    properties.insert("write_back_id".into(), work.row.message_id.clone().into());
    if let Some(request) = request {
        properties.insert("set".into(), request.set.clone().into());
        properties.insert("field".into(), request.field.clone().into());
        properties.insert("value".into(), request.value.clone());
        properties.insert("actor".into(), request.actor().into());
        properties.insert("journey_id".into(), journey_id.into());
    }
    properties.insert("code".into(), failure.code.into());
    properties.insert("reason".into(), failure.reason.into());
    properties.insert("state".into(), state.as_str().into());
    properties.insert("attempts".into(), record.attempts.into());
    // A failure to be retried gets an event per attempt (each its own message id).
    let id = format!("{}-{}", work.row.message_id, record.attempts);
    let event = event(WRITE_BACK_FAILED, &id, properties);
    (record, event)
}

/// The audit of an applied write-back as event properties.
fn applied_properties(id: &str, journey_id: &str, audit: &AuditRecord) -> Map<String, Value> {
    let mut properties = Map::new();
    properties.insert("write_back_id".into(), id.into());
    properties.insert("set".into(), audit.attribute.clone().into());
    properties.insert("field".into(), audit.field.clone().into());
    properties.insert("source".into(), audit.source.clone().into());
    properties.insert("source_id".into(), audit.source_id.clone().into());
    properties.insert(
        "previous_value".into(),
        audit.previous_value.clone().unwrap_or(Value::Null),
    );
    properties.insert("value".into(), audit.new_value.clone());
    properties.insert("actor".into(), audit.actor.clone().into());
    properties.insert("journey_id".into(), journey_id.into());
    if let WriteOutcome::Applied { rows } = audit.outcome {
        properties.insert("rows".into(), rows.into());
    }
    properties
}
