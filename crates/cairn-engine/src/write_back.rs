//! Write-backs: fields of federated attribute sets a journey's `update_profile` step asks to write
//! to their source system (`write_back: {loyalty.tier: "'gold'"}`).
//!
//! The applier does no network I/O, so a write-back is an outbox row on the internal channel
//! [`WRITE_BACK_CHANNEL`], committed with the input that decided it; the dispatcher performs it
//! with the dispatcher's durability (attempt recorded, then the result, retried with backoff) and
//! records its audit as an event on the profile (`Write Back Applied` / `Write Back Failed`).
//! The row id is deterministic — (enrollment, step, decision time, field) — so a replay of the
//! log re-produces the same ids and the delivery store keeps a write from running twice.

use cairn_journey::effects::WriteBack;
use cairn_model::WorkspaceId;
use cairn_storage::OutboxRow;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

/// The internal outbox channel of write-backs.
pub const WRITE_BACK_CHANNEL: &str = "write_back";

/// Each workspace's federated attribute sets that declare a write-back: the targets journeys may
/// name (validation refuses any other).
pub type WritableSets = BTreeMap<WorkspaceId, BTreeSet<String>>;

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
pub(crate) fn outbox_row(
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

/// Whether an outbox channel is internal (activity items, write-backs): not a customer message.
pub fn is_internal_channel(channel: &str) -> bool {
    channel == WRITE_BACK_CHANNEL || channel == crate::activity::ACTIVITY_CHANNEL
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
        let row = outbox_row(&write_back("tier"), &WorkspaceId::new("acme"), 7);
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
}
