//! Federated attributes as the engine sees them: the sets each workspace declares (what journey
//! validation checks `fetch` steps and `write_back` targets against), and the internal outbox rows
//! through which journeys ask the dispatcher to fetch values and to write fields back — the applier
//! does no network I/O.
//!
//! - A `fetch` step's request is a row on [`FETCH_CHANNEL`] with the step's message id (enrollment,
//!   step, visit); the dispatcher fetches the sets for the profile's source records and answers
//!   with a [`FEDERATED_FETCHED`] event (`message_id`, `ok`, `response`: the values per set, or the
//!   error), which the applier hands to the waiting enrollment like a webhook's answer.
//! - A write-back (`update_profile` `write_back: {loyalty.tier: "'gold'"}`) is a row on
//!   [`WRITE_BACK_CHANNEL`], committed with the input that decided it; the dispatcher performs it
//!   durably (attempt recorded, then the result, retried with backoff) and records its audit as an
//!   event on the profile (`Write Back Applied` / `Write Back Failed`).
//!
//! Row ids are deterministic, so a replay of the log re-produces the same ids and the delivery store
//! keeps a request from running twice.

use cairn_journey::effects::{FetchRequest, WriteBack};
use cairn_model::WorkspaceId;
use cairn_storage::OutboxRow;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

/// The internal outbox channel of write-backs.
pub const WRITE_BACK_CHANNEL: &str = "write_back";
/// The internal outbox channel of `fetch` steps' requests.
pub const FETCH_CHANNEL: &str = "federated_fetch";
/// The event that answers a fetch request.
pub const FEDERATED_FETCHED: &str = "Federated Attributes Fetched";

/// A workspace's declared federated attribute sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeclaredSets {
    /// Every declared set (what `fetch` steps may name).
    pub readable: BTreeSet<String>,
    /// The sets whose connector declares a write (what `write_back` may name).
    pub writable: BTreeSet<String>,
}

/// Each workspace's declared federated attribute sets.
pub type FederatedSets = BTreeMap<WorkspaceId, DeclaredSets>;

/// The deterministic id of a write-back.
pub fn write_back_id(write_back: &WriteBack) -> String {
    format!(
        "wb-{:016x}{:04x}-{}-{}.{}",
        write_back.enrollment.0,
        write_back.step.0,
        write_back.at_ms,
        write_back.set,
        write_back.field
    )
}

/// The outbox row that carries a write-back to the dispatcher (always `ready`).
pub(crate) fn write_back_row(
    write_back: &WriteBack,
    workspace: &WorkspaceId,
    profile_rank: u32,
) -> OutboxRow {
    let message_id = write_back_id(write_back);
    let body = json!({
        "message_id": message_id,
        "journey_id": write_back.journey_id,
        "step_id": write_back.step_id,
        "profile_id": write_back.profile_id,
        "set": write_back.set,
        "field": write_back.field,
        "value": write_back.value,
        "at_ms": write_back.at_ms,
    });
    OutboxRow {
        message_id,
        workspace: workspace.clone(),
        profile_rank,
        journey_id: write_back.journey_id.to_string(),
        channel: WRITE_BACK_CHANNEL.to_string(),
        at_ms: write_back.at_ms,
        status: "ready".to_string(),
        body: body.to_string(),
    }
}

/// The outbox row that carries a fetch request to the dispatcher (always `ready`).
pub(crate) fn fetch_row(
    fetch: &FetchRequest,
    workspace: &WorkspaceId,
    profile_rank: u32,
) -> OutboxRow {
    let message_id = fetch.message_id.to_string();
    let body = json!({
        "message_id": message_id,
        "journey_id": fetch.journey_id,
        "step_id": fetch.step_id,
        "profile_id": fetch.profile_id,
        "sets": fetch.sets,
        "at_ms": fetch.at_ms,
    });
    OutboxRow {
        message_id,
        workspace: workspace.clone(),
        profile_rank,
        journey_id: fetch.journey_id.to_string(),
        channel: FETCH_CHANNEL.to_string(),
        at_ms: fetch.at_ms,
        status: "ready".to_string(),
        body: body.to_string(),
    }
}

/// Whether an outbox channel is internal (activity items, fetches, write-backs): not a customer
/// message.
pub fn is_internal_channel(channel: &str) -> bool {
    [
        WRITE_BACK_CHANNEL,
        FETCH_CHANNEL,
        crate::activity::ACTIVITY_CHANNEL,
    ]
    .contains(&channel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_journey::ids::{EnrollmentId, JourneyKey, StepIndex};
    use std::sync::Arc;

    fn write_back(field: &str) -> WriteBack {
        WriteBack {
            enrollment: EnrollmentId(0x2a),
            journey: JourneyKey(1),
            journey_id: Arc::from("vip"),
            step: StepIndex(3),
            step_id: Arc::from("promote"),
            profile_id: Arc::from("prof_1"),
            set: Arc::from("loyalty"),
            field: Arc::from(field),
            value: json!("gold"),
            at_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn ids_are_deterministic_and_differ_per_field() {
        assert_eq!(
            write_back_id(&write_back("tier")),
            "wb-000000000000002a0003-1700000000000-loyalty.tier"
        );
        assert_ne!(
            write_back_id(&write_back("tier")),
            write_back_id(&write_back("points"))
        );
    }

    #[test]
    fn the_row_carries_the_target_and_the_value_to_the_dispatcher() {
        let row = write_back_row(&write_back("tier"), &WorkspaceId::new("acme"), 7);
        assert_eq!(row.channel, WRITE_BACK_CHANNEL);
        assert_eq!(row.status, "ready");
        let body: serde_json::Value = serde_json::from_str(&row.body).expect("json");
        assert_eq!(body["set"], "loyalty");
        assert_eq!(body["field"], "tier");
        assert_eq!(body["value"], "gold");
        assert_eq!(body["profile_id"], "prof_1");
        assert!(is_internal_channel(&row.channel));
        assert!(!is_internal_channel("email"));
    }

    #[test]
    fn a_fetch_row_carries_the_step_s_message_id_and_the_sets() {
        let fetch = FetchRequest {
            message_id: cairn_journey::MessageId {
                enrollment: EnrollmentId(0x2a),
                step: StepIndex(1),
                attempt: 2,
            },
            enrollment: EnrollmentId(0x2a),
            journey: JourneyKey(1),
            journey_id: Arc::from("vip"),
            step_id: Arc::from("points"),
            profile_id: Arc::from("prof_1"),
            sets: Arc::from([Arc::from("loyalty")]),
            at_ms: 5,
        };
        let row = fetch_row(&fetch, &WorkspaceId::new("acme"), 7);
        assert_eq!(row.message_id, "000000000000002a00010002");
        assert_eq!(row.channel, FETCH_CHANNEL);
        let body: serde_json::Value = serde_json::from_str(&row.body).expect("json");
        assert_eq!(body["sets"], json!(["loyalty"]));
        assert_eq!(body["message_id"], "000000000000002a00010002");
        assert!(is_internal_channel(&row.channel));
    }
}
