//! `fetch` steps: the federated attribute sets a journey asks for, fetched for the customer and
//! answered to the waiting enrollment.
//!
//! A request is a row of the engine's internal `federated_fetch` channel, run by
//! [`crate::internal_worker`]. The job fetches the sets through `cairn-federated` for the
//! profile's source records (each set's cache, timeout and failure policy; a set is `null` when the
//! customer has no record of its source) and submits a `Federated Attributes Fetched` event with
//! the request's `message_id`, `ok` and `response` — the values per set, or `{"error": {code,
//! message}}` when a source failed under its policy — which the engine hands to the enrollment like
//! a webhook's answer: `journey.steps.<id>.response.<set>.<field>`. Nothing is retried here: a
//! failure is an answer (the step's `on_failure` path), and a request the answer misses in time
//! takes `on_timeout`. The values live in the enrollment's data only, never in the profile.

use crate::dispatcher::{record_of, Shared, Work};
use crate::feedback;
use crate::internal_worker::Settled;
use cairn_engine::federated::{FEDERATED_FETCHED, FETCH_CHANNEL};
use cairn_model::ProfileId;
use cairn_storage::DeliveryState;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// What the engine's outbox row of a fetch request says.
#[derive(Debug, Deserialize)]
struct Request {
    profile_id: String,
    #[serde(default)]
    journey_id: String,
    sets: Vec<String>,
}

/// One fetch: the values (or the error) as the answer event, and its record.
pub(crate) async fn fetch(shared: Arc<Shared>, work: Work) -> Settled {
    let mut record = record_of(&work, FETCH_CHANNEL, shared.now_ms());
    record.attempts = work.attempts + 1;
    record.state = DeliveryState::Sent;
    record.provider = Some("federated".into());
    let Ok(request) = serde_json::from_str::<Request>(&work.row.body) else {
        record.state = DeliveryState::Failed;
        record.last_error = Some("invalid_body: the fetch request is not readable".into());
        return (record, None);
    };
    let workspace = &work.row.workspace;
    let Some(profile) = ProfileId::parse(&request.profile_id)
        .and_then(|id| shared.reader.profile_now(workspace, &id))
    else {
        record.state = DeliveryState::Failed;
        record.last_error = Some("record_not_found: the profile is gone".into());
        return (record, None);
    };
    let answer = match shared.federated.get(workspace) {
        Some(attributes) => {
            let records = shared.reader.source_record_ids_now(workspace, &profile.id);
            let names: Vec<&str> = request.sets.iter().map(String::as_str).collect();
            attributes
                .fetch_for_profile(&names, &records)
                .await
                .map(|sets| Value::Object(sets.into_iter().collect()))
                .map_err(|error| (error.error_code_name(), error.to_string()))
        }
        None => Err((
            "invalid_config",
            "the workspace declares no federated attribute sets".to_string(),
        )),
    };
    let mut properties = Map::new();
    properties.insert("message_id".into(), work.row.message_id.clone().into());
    properties.insert("journey_id".into(), request.journey_id.into());
    properties.insert("sets".into(), json!(request.sets));
    match answer {
        Ok(values) => {
            properties.insert("ok".into(), true.into());
            properties.insert("response".into(), values);
        }
        Err((code, message)) => {
            record.last_error = Some(format!("{code}: {message}"));
            properties.insert("ok".into(), false.into());
            properties.insert(
                "response".into(),
                json!({"error": {"code": code, "message": message}}),
            );
        }
    }
    let event = feedback::event(
        profile.id,
        FEDERATED_FETCHED,
        &work.row.message_id,
        properties,
        None,
        shared.clock.now(),
    );
    (record, Some(event))
}
