//! Store tests against a real SQLite database in a temporary directory.

use super::*;
use cairn_model::{IdentifierKind, MessageKind, PartitionId, ProfileId, WorkspaceId};
use cairn_storage::{NewEvent, ReadStore, Store};
use chrono::{TimeZone, Utc};
use serde_json::{json, Map, Value};

fn body(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _store = open(dir.path()).expect("first open");
    assert!(matches!(open(dir.path()), Err(StorageError::Locked(_))));
}

#[test]
fn a_failed_transaction_keeps_nothing_and_a_committed_one_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = WorkspaceId::new("acme");
    let at = Utc
        .with_ymd_and_hms(2024, 5, 1, 0, 0, 0)
        .single()
        .expect("time");
    let id = ProfileId("prof_1".into());
    let message = body(json!({"type": "track"}));
    {
        let (mut writer, reader) = open(dir.path()).expect("open");
        let result = writer.write(&mut |txn| {
            txn.create_profile(&ws, &id, Some("u1"), at)?;
            Err(StorageError::Backend("injected failure".into()))
        });
        assert!(result.is_err());
        assert_eq!(reader.event_count(&ws).expect("count"), 0);
        writer
            .write(&mut |txn| {
                // The failed transaction's profile was rolled back, so creating it again works.
                txn.create_profile(&ws, &id, Some("u1"), at)?;
                txn.link_identifier(
                    &ws,
                    &cairn_model::Identifier::new(IdentifierKind::UserId, "u1"),
                    &id,
                )?;
                txn.append_event(&NewEvent {
                    workspace: &ws,
                    partition: PartitionId::of(&id),
                    profile: &id,
                    kind: MessageKind::Track,
                    message_id: "m1",
                    name: Some("Signed Up"),
                    timestamp: at,
                    received_at: at,
                    body: &message,
                })?;
                Ok(())
            })
            .expect("commit");
    }
    let (mut writer, reader) = open(dir.path()).expect("reopen");
    let recent = writer
        .recent_message_ids(at, 10)
        .expect("recent message ids");
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].message_id, "m1");
    assert!(writer
        .recent_message_ids(at + chrono::Duration::seconds(1), 10)
        .expect("recent")
        .is_empty());
    let profile = reader
        .profile(&ws, &id)
        .expect("read")
        .expect("profile exists");
    assert_eq!(profile.event_count, 1);
    assert_eq!(
        reader.events(&ws, &id, None, 10).expect("events")[0]
            .name
            .as_deref(),
        Some("Signed Up")
    );
    assert!(
        reader
            .profile(&WorkspaceId::new("other"), &id)
            .expect("read")
            .is_none(),
        "workspaces are isolated"
    );
}
