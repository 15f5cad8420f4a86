//! Engine tests against the real SQLite store, with a manual clock.

use super::*;
use cairn_core::segment::{normalize, Envelope};
use cairn_model::{Identifier, IdentifierKind, NormalizedMessage, WorkspaceId};
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};

struct Fixture {
    _dir: tempfile::TempDir,
    engine: Engine,
    clock: Arc<ManualClock>,
}

fn start(options: EngineOptions) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let (writer, reader) = cairn_store_sqlite::open(dir.path()).expect("open store");
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0)
            .single()
            .expect("time"),
    ));
    let engine =
        Engine::start(options, Box::new(writer), Arc::new(reader), clock.clone()).expect("start");
    Fixture {
        _dir: dir,
        engine,
        clock,
    }
}

fn message(fixture: &Fixture, value: Value) -> NormalizedMessage {
    let map = value.as_object().cloned().expect("object");
    normalize(map, &Envelope::default(), fixture.clock.now()).expect("valid message")
}

fn ws() -> WorkspaceId {
    WorkspaceId::new("acme")
}

fn submit(fixture: &Fixture, messages: Vec<Value>) -> Receipt {
    let messages = messages.into_iter().map(|m| message(fixture, m)).collect();
    fixture
        .engine
        .ingestor()
        .submit_blocking(ws(), messages)
        .expect("committed")
}

fn profile_of(fixture: &Fixture, kind: IdentifierKind, value: &str) -> cairn_model::Profile {
    fixture
        .engine
        .reader()
        .profile_by_identifier(&ws(), &Identifier::new(kind, value))
        .expect("read")
        .expect("profile exists")
}

#[test]
fn duplicates_of_a_message_id_are_dropped_within_and_across_requests() {
    let fixture = start(EngineOptions::default());
    let track = json!({"type": "track", "userId": "u1", "event": "A", "messageId": "m-1"});
    let receipt = submit(&fixture, vec![track.clone(), track.clone()]);
    assert_eq!(
        receipt,
        Receipt {
            accepted: 1,
            duplicates: 1
        }
    );
    assert_eq!(
        submit(&fixture, vec![track]),
        Receipt {
            accepted: 0,
            duplicates: 1
        }
    );
    assert_eq!(
        profile_of(&fixture, IdentifierKind::UserId, "u1").event_count,
        1
    );
}

#[test]
fn identify_links_an_anonymous_visitor_and_alias_merges_profiles() {
    let fixture = start(EngineOptions::default());
    submit(
        &fixture,
        vec![json!({"type": "page", "anonymousId": "a1", "name": "Home"})],
    );
    let visitor = profile_of(&fixture, IdentifierKind::AnonymousId, "a1");
    submit(
        &fixture,
        vec![
            json!({"type": "identify", "anonymousId": "a1", "userId": "u1", "traits": {"email": "Ann@X.io", "plan": "pro"}}),
        ],
    );
    let known = profile_of(&fixture, IdentifierKind::UserId, "u1");
    assert_eq!(
        known.id, visitor.id,
        "the visitor's profile becomes the user's"
    );
    assert_eq!(
        profile_of(&fixture, IdentifierKind::Email, "ann@x.io").id,
        visitor.id
    );
    assert_eq!(known.traits["plan"], json!("pro"));

    // A second device, then an alias from it to the user: the younger profile merges into the older.
    submit(
        &fixture,
        vec![json!({"type": "track", "anonymousId": "a2", "event": "Viewed"})],
    );
    let device = profile_of(&fixture, IdentifierKind::AnonymousId, "a2");
    submit(
        &fixture,
        vec![json!({"type": "alias", "previousId": "a2", "userId": "u1"})],
    );
    let merged = profile_of(&fixture, IdentifierKind::AnonymousId, "a2");
    assert_eq!(merged.id, visitor.id);
    assert_eq!(merged.merged_ids, vec![device.id.clone()]);
    assert_eq!(merged.event_count, 4);
    let by_old_id = fixture
        .engine
        .reader()
        .profile(&ws(), &device.id)
        .expect("read")
        .expect("resolves");
    assert_eq!(
        by_old_id.id, visitor.id,
        "a merged-away id still finds the profile"
    );
}

#[test]
fn a_shared_device_does_not_fuse_two_users() {
    let fixture = start(EngineOptions::default());
    submit(
        &fixture,
        vec![json!({"type": "identify", "anonymousId": "kiosk", "userId": "u1"})],
    );
    submit(
        &fixture,
        vec![json!({"type": "identify", "anonymousId": "kiosk", "userId": "u2"})],
    );
    let one = profile_of(&fixture, IdentifierKind::UserId, "u1");
    let two = profile_of(&fixture, IdentifierKind::UserId, "u2");
    assert_ne!(one.id, two.id);
    assert_eq!(
        profile_of(&fixture, IdentifierKind::AnonymousId, "kiosk").id,
        one.id
    );
}

#[test]
fn within_one_group_a_newly_linked_user_id_is_respected() {
    // Both messages land in the same commit: the second must see the user id the first linked.
    let fixture = start(EngineOptions::default());
    submit(&fixture, vec![json!({"type": "page", "anonymousId": "a1"})]);
    submit(
        &fixture,
        vec![
            json!({"type": "identify", "anonymousId": "a1", "userId": "u1"}),
            json!({"type": "identify", "anonymousId": "a1", "userId": "u2"}),
        ],
    );
    assert_ne!(
        profile_of(&fixture, IdentifierKind::UserId, "u1").id,
        profile_of(&fixture, IdentifierKind::UserId, "u2").id
    );
}

#[test]
fn late_events_do_not_overwrite_newer_traits() {
    let fixture = start(EngineOptions::default());
    submit(
        &fixture,
        vec![
            json!({"type": "identify", "userId": "u1", "traits": {"plan": "pro"}, "timestamp": "2024-05-01T11:00:00Z"}),
        ],
    );
    submit(
        &fixture,
        vec![
            json!({"type": "identify", "userId": "u1", "traits": {"plan": "free"}, "timestamp": "2024-04-01T11:00:00Z"}),
        ],
    );
    assert_eq!(
        profile_of(&fixture, IdentifierKind::UserId, "u1").traits["plan"],
        json!("pro")
    );
    let events = fixture
        .engine
        .reader()
        .events(
            &ws(),
            &profile_of(&fixture, IdentifierKind::UserId, "u1").id,
            None,
            10,
        )
        .expect("events");
    assert_eq!(events.len(), 2);
    assert!(
        events[0].timestamp > events[1].timestamp,
        "newest first by event time"
    );
}

#[test]
fn a_full_queue_refuses_work_instead_of_growing() {
    let fixture = start(EngineOptions {
        queue_capacity_events: 1,
        ..EngineOptions::default()
    });
    let ingestor = fixture.engine.ingestor();
    // Fill the queue from many threads at once; at least one request must be refused, and every
    // accepted one must be stored.
    let handles: Vec<_> = (0..16)
        .map(|n| {
            let ingestor = ingestor.clone();
            let messages: Vec<_> = (0..50)
                .map(|i| message(&fixture, json!({"type": "track", "userId": format!("u{n}"), "event": "E", "messageId": format!("{n}-{i}")})))
                .collect();
            std::thread::spawn(move || ingestor.submit_blocking(ws(), messages))
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    let accepted: usize = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|r| r.accepted)
        .sum();
    assert!(results
        .iter()
        .any(|r| matches!(r, Err(EngineError::Overloaded))));
    assert_eq!(
        fixture.engine.reader().event_count(&ws()).expect("count"),
        accepted as i64
    );
}

#[test]
fn an_alias_from_an_old_user_id_to_a_new_one_merges_the_profiles() {
    let fixture = start(EngineOptions::default());
    submit(
        &fixture,
        vec![json!({"type": "track", "userId": "old-1", "event": "Legacy"})],
    );
    submit(
        &fixture,
        vec![json!({"type": "identify", "userId": "new-1", "traits": {"plan": "pro"}})],
    );
    submit(
        &fixture,
        vec![json!({"type": "alias", "previousId": "old-1", "userId": "new-1"})],
    );
    let by_old = profile_of(&fixture, IdentifierKind::UserId, "old-1");
    let by_new = profile_of(&fixture, IdentifierKind::UserId, "new-1");
    assert_eq!(by_old.id, by_new.id);
    assert_eq!(by_new.event_count, 3);
    assert_eq!(by_new.traits["plan"], json!("pro"));
    // The new user id is now primary: a device identifying as new-1 joins, one as old-1 too (same person).
    submit(
        &fixture,
        vec![json!({"type": "identify", "userId": "new-1", "anonymousId": "phone"})],
    );
    assert_eq!(
        profile_of(&fixture, IdentifierKind::AnonymousId, "phone").id,
        by_new.id
    );
}

#[test]
fn the_dedupe_window_survives_a_restart_and_expires() {
    let dir = tempfile::tempdir().expect("tempdir");
    let start_at = Utc
        .with_ymd_and_hms(2024, 5, 1, 12, 0, 0)
        .single()
        .expect("time");
    let clock = Arc::new(ManualClock::new(start_at));
    let restart = |clock: &Arc<ManualClock>| {
        let (writer, reader) = cairn_store_sqlite::open(dir.path()).expect("open store");
        Engine::start(
            EngineOptions::default(),
            Box::new(writer),
            Arc::new(reader),
            clock.clone(),
        )
        .expect("start")
    };
    let send = |engine: &Engine, clock: &ManualClock| {
        let message =
            json!({"type": "track", "userId": "u1", "event": "E", "messageId": "retry-me"});
        let message = normalize(
            message.as_object().cloned().expect("object"),
            &Envelope::default(),
            clock.now(),
        )
        .expect("valid");
        engine
            .ingestor()
            .submit_blocking(ws(), vec![message])
            .expect("committed")
    };
    let engine = restart(&clock);
    assert_eq!(send(&engine, &clock).accepted, 1);
    engine.shutdown();

    clock.advance(chrono::Duration::hours(23));
    let engine = restart(&clock);
    assert_eq!(
        send(&engine, &clock).duplicates,
        1,
        "a retry after a restart is still a duplicate"
    );
    engine.shutdown();

    clock.advance(chrono::Duration::hours(2));
    let engine = restart(&clock);
    assert_eq!(
        send(&engine, &clock).accepted,
        1,
        "outside the 24 h window the id is new again"
    );
    engine.shutdown();
}
