//! Store tests against real SQLite databases in a temporary directory.

use super::*;
use cairn_model::{Identifier, IdentifierKind, ProfileId, TraitSet, WorkspaceId};
use cairn_storage::{
    Checkpoint, EventCursor, LogRecord, OutboxRow, ProfileRow, ProfileWrite, RecordKind,
    TimelineEntry, TraceRow,
};

fn messages(workspace: &str, received_at_ms: i64, keys: &[u128]) -> LogRecord {
    LogRecord {
        seq: 0,
        kind: RecordKind::Messages,
        workspace: WorkspaceId::new(workspace),
        received_at_ms,
        count: keys.len() as u32,
        keys: keys.to_vec(),
        payload: format!("payload@{received_at_ms}").into_bytes(),
    }
}

fn profile(rank: u32, event_count: u64) -> ProfileRow {
    let workspace = WorkspaceId::new("acme");
    let identifier = Identifier::new(IdentifierKind::UserId, format!("u{rank}"));
    let mut traits = TraitSet::default();
    traits
        .values
        .insert("plan".into(), serde_json::json!("pro"));
    traits.set_at.insert("plan".into(), 5);
    ProfileRow {
        rank,
        id: ProfileId::derive(&workspace, &identifier),
        workspace,
        user_id: Some(identifier.value.clone()),
        merged_into: None,
        identifiers: vec![identifier],
        traits,
        created_at_ms: 1,
        updated_at_ms: 2,
        event_count,
        extra: b"{}".to_vec(),
    }
}

fn load_all(backend: &mut Backend) -> Vec<ProfileRow> {
    let mut rows = Vec::new();
    backend
        .state
        .load_profiles(&mut |row| {
            rows.push(row);
            Ok(())
        })
        .expect("load");
    rows
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _store = open(dir.path()).expect("first open");
    assert!(matches!(open(dir.path()), Err(StorageError::Locked(_))));
}

#[test]
fn log_records_get_increasing_seqs_and_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut backend = open(dir.path()).expect("open");
        let mut first = vec![messages("acme", 10, &[1, 2]), messages("globex", 11, &[3])];
        backend.log.append(&mut first).expect("append");
        assert_eq!(first.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
        let mut second = vec![messages("acme", 12, &[4])];
        backend.log.append(&mut second).expect("append");
        assert_eq!(second[0].seq, 3);
    }
    let mut backend = open(dir.path()).expect("reopen");
    assert_eq!(backend.log_reader.last_seq().expect("last"), 3);
    let after_one = backend.log_reader.read_after(1, 10).expect("read");
    assert_eq!(after_one.len(), 2);
    assert_eq!(after_one[0].workspace, WorkspaceId::new("globex"));
    assert_eq!(after_one[0].keys, [3]);
    assert_eq!(after_one[1].payload, b"payload@12");
    assert_eq!(backend.log_reader.read_after(1, 1).expect("read").len(), 1);
    let picked = backend
        .log_reader
        .read_many(&[3, 1, 3, 99])
        .expect("read many");
    assert_eq!(picked.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 3]);
    let mut next = vec![messages("acme", 13, &[5])];
    backend.log.append(&mut next).expect("append after reopen");
    assert_eq!(next[0].seq, 4, "sequence numbers continue after a reopen");
}

#[test]
fn recent_keys_cover_the_window_oldest_first_and_respect_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut backend = open(dir.path()).expect("open");
    let mut records = vec![
        messages("acme", 1_000, &[1]),
        messages("acme", 2_000, &[2, 3]),
        LogRecord {
            seq: 0,
            kind: RecordKind::Tick,
            workspace: WorkspaceId::new(""),
            received_at_ms: 2_500,
            count: 0,
            keys: vec![],
            payload: vec![],
        },
        messages("acme", 3_000, &[4]),
    ];
    backend.log.append(&mut records).expect("append");
    let keys = backend.log_reader.recent_keys(2_000, 100).expect("keys");
    assert_eq!(keys, [(2_000, 2), (2_000, 3), (3_000, 4)]);
    let newest_two = backend.log_reader.recent_keys(0, 2).expect("keys");
    assert_eq!(newest_two, [(2_000, 3), (3_000, 4)]);
}

#[test]
fn checkpoints_round_trip_profiles_counters_and_timelines() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut backend = open(dir.path()).expect("open");
        assert_eq!(backend.state.applied_seq().expect("seq"), 0);
        backend
            .state
            .checkpoint(&Checkpoint {
                applied_seq: 7,
                profiles: vec![
                    ProfileWrite::Full(profile(1, 2)),
                    ProfileWrite::Full(profile(2, 1)),
                ],
                timeline: vec![
                    TimelineEntry {
                        profile_rank: 1,
                        timestamp_ms: 100,
                        seq: 11,
                    },
                    TimelineEntry {
                        profile_rank: 2,
                        timestamp_ms: 100,
                        seq: 12,
                    },
                    TimelineEntry {
                        profile_rank: 1,
                        timestamp_ms: 50,
                        seq: 13,
                    },
                ],
                ..Checkpoint::default()
            })
            .expect("checkpoint");
        backend
            .state
            .checkpoint(&Checkpoint {
                applied_seq: 9,
                profiles: vec![ProfileWrite::Counters {
                    rank: 1,
                    event_count: 3,
                    updated_at_ms: 9,
                }],
                timeline: vec![TimelineEntry {
                    profile_rank: 1,
                    timestamp_ms: 100,
                    seq: 14,
                }],
                ..Checkpoint::default()
            })
            .expect("checkpoint");
    }
    let mut backend = open(dir.path()).expect("reopen");
    assert_eq!(backend.state.applied_seq().expect("seq"), 9);
    let rows = load_all(&mut backend);
    let mut expected = profile(1, 3);
    expected.updated_at_ms = 9;
    assert_eq!(rows, vec![expected, profile(2, 1)]);

    let reader = &backend.state_reader;
    let newest = reader.timeline(&[1], None, 10).expect("timeline");
    assert_eq!(
        newest.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [14, 11, 13],
        "newest first by timestamp, then by seq"
    );
    let page = reader
        .timeline(
            &[1, 2],
            Some(EventCursor {
                timestamp_ms: 100,
                seq: 14,
            }),
            2,
        )
        .expect("timeline");
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [12, 11]);
    reader.ping().expect("ping");
}

#[test]
fn checkpoints_keep_engine_state_outbox_traces_registries_and_counters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = |id: &str, at_ms| OutboxRow {
        message_id: id.into(),
        workspace: WorkspaceId::new("acme"),
        profile_rank: 1,
        journey_id: "welcome".into(),
        channel: "email".into(),
        at_ms,
        status: "ready".into(),
        body: format!("{{\"message_id\":\"{id}\"}}"),
    };
    let trace = |position| TraceRow {
        profile_rank: 1,
        journey_id: "welcome".into(),
        enrollment: 7,
        position,
        at_ms: 10,
        entry: format!("{{\"n\":{position}}}").into_bytes(),
    };
    {
        let mut backend = open(dir.path()).expect("open");
        backend
            .state
            .checkpoint(&Checkpoint {
                applied_seq: 3,
                profiles: vec![ProfileWrite::Full(profile(1, 1))],
                outbox: vec![outbox("m1", 10), outbox("m2", 20)],
                traces: vec![trace(1), trace(0)],
                registries: vec![(WorkspaceId::new("acme"), b"{\"journeys\":{}}".to_vec())],
                counters: vec![("next_enrollment_id".into(), 8)],
                ..Checkpoint::default()
            })
            .expect("checkpoint");
        backend
            .state
            .checkpoint(&Checkpoint {
                applied_seq: 4,
                profiles: vec![ProfileWrite::Extra {
                    rank: 1,
                    event_count: 2,
                    updated_at_ms: 30,
                    extra: b"{\"journeys\":1}".to_vec(),
                }],
                outbox: vec![outbox("m2", 20)],
                counters: vec![("next_enrollment_id".into(), 9)],
                ..Checkpoint::default()
            })
            .expect("an outbox message written twice (a replay) is kept once");
    }
    let mut backend = open(dir.path()).expect("reopen");
    let rows = load_all(&mut backend);
    assert_eq!(rows[0].extra, b"{\"journeys\":1}");
    assert_eq!((rows[0].event_count, rows[0].updated_at_ms), (2, 30));
    assert_eq!(
        rows[0].traits,
        profile(1, 1).traits,
        "an extra write keeps the traits"
    );
    assert_eq!(
        backend.state.load_counters().expect("counters"),
        vec![("next_enrollment_id".to_string(), 9)]
    );
    assert_eq!(
        backend.state.load_registries().expect("registries"),
        vec![(WorkspaceId::new("acme"), b"{\"journeys\":{}}".to_vec())]
    );
    let reader = &backend.state_reader;
    let newest: Vec<String> = reader
        .outbox(&[1], 10)
        .expect("outbox")
        .into_iter()
        .map(|row| row.message_id)
        .collect();
    assert_eq!(newest, ["m2", "m1"]);
    assert_eq!(
        reader.outbox_message("m1").expect("read"),
        Some(outbox("m1", 10))
    );
    assert_eq!(reader.outbox_message("nope").expect("read"), None);
    let ready: Vec<String> = reader
        .ready_outbox(15, 10)
        .expect("ready")
        .into_iter()
        .map(|row| row.message_id)
        .collect();
    assert_eq!(ready, ["m2"], "ready messages decided since 15");
    let traces = reader.traces(&[1], "welcome").expect("traces");
    assert_eq!(
        traces,
        vec![trace(0), trace(1)],
        "in order within the enrollment"
    );
    assert!(reader.traces(&[1], "other").expect("traces").is_empty());
}

#[test]
fn trace_entries_written_as_text_by_older_builds_read_as_their_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(open(dir.path()).expect("open"));
    {
        // A row as older builds wrote it: the decision as JSON text.
        let connection = rusqlite::Connection::open(dir.path().join("state.db")).expect("sqlite");
        connection
            .execute(
                "INSERT INTO traces (profile, journey, enrollment, position, at, entry)
                 VALUES (1, 'welcome', 7, 0, 10, '{\"k\":1}')",
                [],
            )
            .expect("insert");
    }
    let mut backend = open(dir.path()).expect("reopen");
    let binary = TraceRow {
        profile_rank: 1,
        journey_id: "welcome".into(),
        enrollment: 7,
        position: 1,
        at_ms: 11,
        entry: vec![1, 0, 0xff],
    };
    backend
        .state
        .checkpoint(&Checkpoint {
            applied_seq: 1,
            traces: vec![binary.clone()],
            ..Checkpoint::default()
        })
        .expect("checkpoint");
    let traces = backend
        .state_reader
        .traces(&[1], "welcome")
        .expect("traces");
    let entries: Vec<&[u8]> = traces.iter().map(|row| row.entry.as_slice()).collect();
    assert_eq!(entries, [&b"{\"k\":1}"[..], &[1, 0, 0xff][..]]);
}
