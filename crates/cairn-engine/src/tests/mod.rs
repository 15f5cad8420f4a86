//! Engine tests against the real SQLite store, with a manual clock.

mod customer360;
mod delivery;
mod journeys;

use super::*;
use crate::Gate;
use cairn_core::segment::{normalize_object, Envelope};
use cairn_model::{Identifier, IdentifierKind, NormalizedMessage, WorkspaceId};
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};

struct Fixture {
    _dir: tempfile::TempDir,
    engine: Engine,
    clock: Arc<ManualClock>,
}

/// When the tests' manual clocks start.
fn test_start() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0)
        .single()
        .expect("time")
}

fn start(options: EngineOptions) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = cairn_store_sqlite::open(dir.path()).expect("open store");
    let clock = Arc::new(ManualClock::new(test_start()));
    let engine = Engine::start(options, backend, clock.clone()).expect("start");
    Fixture {
        _dir: dir,
        engine,
        clock,
    }
}

/// A data directory and a clock that outlive restarts of the engine.
struct Restartable {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
}

impl Restartable {
    fn new() -> Restartable {
        Restartable {
            dir: tempfile::tempdir().expect("tempdir"),
            clock: Arc::new(ManualClock::new(test_start())),
        }
    }

    fn open(&self, options: EngineOptions) -> Engine {
        let backend = cairn_store_sqlite::open(self.dir.path()).expect("open store");
        Engine::start(options, backend, self.clock.clone()).expect("start")
    }

    fn message(&self, value: Value) -> NormalizedMessage {
        message_at(&self.clock, value)
    }
}

fn message(fixture: &Fixture, value: Value) -> NormalizedMessage {
    message_at(&fixture.clock, value)
}

/// A Segment message as received at the clock's time.
fn message_at(clock: &ManualClock, value: Value) -> NormalizedMessage {
    let map = value.as_object().cloned().expect("object");
    normalize_object(map, &Envelope::default(), clock.now()).expect("valid message")
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
        .expect("profile exists")
}

#[test]
fn duplicates_of_a_message_id_are_dropped_within_and_across_requests() {
    let fixture = start(EngineOptions::default());
    let track = json!({"type": "track", "userId": "u1", "event": "A", "messageId": "m-1"});
    let receipt = submit(&fixture, vec![track.clone(), track.clone()]);
    assert_eq!((receipt.accepted, receipt.duplicates), (1, 1));
    assert!(receipt.seq > 0);
    let retry = submit(&fixture, vec![track]);
    assert_eq!((retry.accepted, retry.duplicates, retry.seq), (0, 1, 0));
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
    assert_eq!(merged.merged_ids, vec![device.id]);
    assert_eq!(merged.event_count, 4);
    let by_old_id = fixture
        .engine
        .reader()
        .profile(&ws(), &device.id)
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
        .expect("events")
        .expect("profile exists");
    assert_eq!(events.len(), 2);
    assert!(
        events[0].timestamp > events[1].timestamp,
        "newest first by event time"
    );
}

#[test]
fn a_full_queue_refuses_work_instead_of_growing() {
    let gate = Gate::default();
    let fixture = start(EngineOptions {
        queue_capacity_events: 60,
        log_gate: Some(gate.clone()),
        ..EngineOptions::default()
    });
    let ingestor = fixture.engine.ingestor();
    let batch = |n: usize| -> Vec<NormalizedMessage> {
        (0..50)
            .map(|i| message(&fixture, json!({"type": "track", "userId": format!("u{n}"), "event": "E", "messageId": format!("{n}-{i}")})))
            .collect()
    };
    // The log writer is held at its breakpoint: the first request waits in the queue.
    gate.close();
    let first = {
        let ingestor = ingestor.clone();
        let messages = batch(0);
        std::thread::spawn(move || ingestor.submit_blocking(ws(), messages))
    };
    while ingestor.queued_events() < 50 {
        std::thread::yield_now();
    }
    assert!(
        matches!(
            ingestor.submit_blocking(ws(), batch(1)),
            Err(EngineError::Overloaded)
        ),
        "50 queued + 50 more exceed the capacity of 60"
    );
    gate.open();
    let receipt = first
        .join()
        .expect("thread")
        .expect("the queued request commits");
    assert_eq!(receipt.accepted, 50);
    assert_eq!(
        ingestor
            .submit_blocking(ws(), batch(2))
            .expect("room again")
            .accepted,
        50
    );
    assert_eq!(
        fixture.engine.reader().event_count(&ws()),
        100,
        "nothing of the refused request"
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
        let backend = cairn_store_sqlite::open(dir.path()).expect("open store");
        Engine::start(EngineOptions::default(), backend, clock.clone()).expect("start")
    };
    let send = |engine: &Engine, clock: &ManualClock| {
        let message =
            json!({"type": "track", "userId": "u1", "event": "E", "messageId": "retry-me"});
        let message = normalize_object(
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

/// What a reader sees of the profiles of `user_ids`: compared before a crash and after the replay.
fn snapshot(engine: &Engine, user_ids: &[String]) -> Vec<Value> {
    let reader = engine.reader();
    user_ids
        .iter()
        .map(|user_id| {
            let Some(profile) = reader
                .profile_by_identifier(&ws(), &Identifier::new(IdentifierKind::UserId, user_id))
            else {
                return Value::Null;
            };
            let events: Vec<i64> = reader
                .events(&ws(), &profile.id, None, 1000)
                .expect("events")
                .expect("profile")
                .iter()
                .map(|event| event.seq)
                .collect();
            let mut identifiers = profile.identifiers.clone();
            identifiers.sort();
            json!({
                "id": profile.id, "traits": profile.traits, "count": profile.event_count,
                "merged": profile.merged_ids, "identifiers": identifiers, "events": events,
            })
        })
        .collect()
}

fn options_for_crash(checkpoint_every: std::time::Duration) -> EngineOptions {
    EngineOptions {
        checkpoint_interval: checkpoint_every,
        checkpoint_on_shutdown: false,
        ..EngineOptions::default()
    }
}

#[test]
fn after_a_crash_the_log_replay_rebuilds_exactly_the_lost_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0)
            .single()
            .expect("time"),
    ));
    let users: Vec<String> = (0..4).map(|n| format!("u{n}")).collect();
    let open = |options: EngineOptions| {
        Engine::start(
            options,
            cairn_store_sqlite::open(dir.path()).expect("open"),
            clock.clone(),
        )
        .expect("start")
    };
    // First run: a checkpoint after the first half, then a crash (no final checkpoint).
    let engine = open(options_for_crash(std::time::Duration::ZERO));
    let fixture_messages = |range: std::ops::Range<usize>| -> Vec<NormalizedMessage> {
        range
            .map(|n| {
                let value = match n % 3 {
                    0 => json!({"type": "identify", "userId": format!("u{}", n % 4), "anonymousId": format!("a{n}"), "traits": {"n": n}}),
                    1 => json!({"type": "track", "anonymousId": format!("a{}", n - 1), "event": "Viewed"}),
                    _ => json!({"type": "alias", "previousId": format!("u{}", n % 4), "userId": format!("u{}", (n + 1) % 4)}),
                };
                normalize_object(value.as_object().cloned().expect("object"), &Envelope::default(), clock.now())
                    .expect("valid")
            })
            .collect()
    };
    engine
        .ingestor()
        .submit_blocking(ws(), fixture_messages(0..12))
        .expect("first half");
    assert!(engine.wait_until_applied(std::time::Duration::from_secs(10)));
    let engine = {
        // Let the applier checkpoint the first half, then stop checkpointing.
        engine.shutdown();
        open(options_for_crash(std::time::Duration::from_secs(3600)))
    };
    for chunk in fixture_messages(12..30).chunks(5) {
        engine
            .ingestor()
            .submit_blocking(ws(), chunk.to_vec())
            .expect("second half");
    }
    let before = snapshot(&engine, &users);
    drop(engine);
    let engine = open(EngineOptions::default());
    assert!(engine.wait_until_applied(std::time::Duration::from_secs(10)));
    assert_eq!(snapshot(&engine, &users), before);
}

mod replay {
    use super::*;
    use proptest::prelude::*;

    fn arbitrary_message() -> impl Strategy<Value = Value> {
        let user = (0..4u8).prop_map(|n| format!("u{n}"));
        let anon = (0..6u8).prop_map(|n| format!("a{n}"));
        prop_oneof![
            (user.clone(), anon.clone(), 0..3u8).prop_map(|(u, a, plan)| json!({"type": "identify", "userId": u, "anonymousId": a, "traits": {"plan": plan}})),
            anon.clone().prop_map(|a| json!({"type": "track", "anonymousId": a, "event": "Viewed"})),
            (user.clone(), 0..3u8).prop_map(|(u, n)| json!({"type": "track", "userId": u, "event": "Bought", "properties": {"n": n}})),
            (anon.clone(), user.clone()).prop_map(|(a, u)| json!({"type": "alias", "previousId": a, "userId": u})),
            (user.clone(), user).prop_map(|(old, new)| json!({"type": "alias", "previousId": old, "userId": new})),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

        /// Whatever the messages and wherever the last checkpoint falls, a crash followed by a replay
        /// gives the same profiles, merges, traits and timelines as before the crash.
        #[test]
        fn a_replay_from_any_checkpoint_rebuilds_the_same_state(
            messages in proptest::collection::vec(arbitrary_message(), 1..40),
            checkpoint_after in 0usize..40,
        ) {
            let data = Restartable::new();
            let open = |options: EngineOptions| data.open(options);
            let normalized: Vec<NormalizedMessage> = messages
                .iter()
                .enumerate()
                .map(|(n, value)| {
                    data.clock.advance(chrono::Duration::seconds(1));
                    let mut value = value.clone();
                    value["messageId"] = json!(format!("m{n}"));
                    data.message(value)
                })
                .collect();
            let split = checkpoint_after.min(normalized.len());
            let engine = open(EngineOptions::default());
            for message in &normalized[..split] {
                engine.ingestor().submit_blocking(ws(), vec![message.clone()]).expect("commit");
            }
            engine.shutdown();
            let engine = open(options_for_crash(std::time::Duration::from_secs(3600)));
            for message in &normalized[split..] {
                engine.ingestor().submit_blocking(ws(), vec![message.clone()]).expect("commit");
            }
            let users: Vec<String> = (0..4).map(|n| format!("u{n}")).collect();
            let before = snapshot(&engine, &users);
            drop(engine);
            let engine = open(EngineOptions::default());
            prop_assert_eq!(snapshot(&engine, &users), before);
        }
    }
}

#[test]
fn events_applied_while_a_checkpoint_is_written_are_kept_by_the_next_one() {
    let data = Restartable::new();
    let gate = Gate::default();
    let options = EngineOptions {
        checkpoint_gate: Some(gate.clone()),
        checkpoint_on_shutdown: false,
        checkpoint_interval: Duration::from_secs(3600),
        tick_interval: None,
        ..EngineOptions::default()
    };
    let open = || data.open(options.clone());
    let identify = |engine: &Engine, user: &str, plan: &str| {
        let message =
            data.message(json!({"type": "identify", "userId": user, "traits": {"plan": plan}}));
        engine
            .ingestor()
            .submit_blocking(ws(), vec![message])
            .expect("committed");
    };
    let plan = |engine: &Engine, user: &str| {
        engine
            .reader()
            .profile_by_identifier(&ws(), &Identifier::new(IdentifierKind::UserId, user))
            .map(|profile| profile.traits["plan"].clone())
    };
    let engine = open();
    identify(&engine, "u1", "a");
    gate.close();
    assert!(
        !engine.checkpoint(Duration::from_millis(300)),
        "the copy is held before it is written"
    );
    // The applier goes on while the copy waits: these changes come after it.
    identify(&engine, "u1", "b");
    identify(&engine, "u2", "c");
    assert_eq!(plan(&engine, "u1"), Some(json!("b")));
    gate.open();
    assert!(engine.checkpoint(Duration::from_secs(10)));
    drop(engine);

    // Nothing is replayed after the second checkpoint: it alone must hold the later changes.
    let engine = open();
    assert_eq!(plan(&engine, "u1"), Some(json!("b")));
    assert_eq!(plan(&engine, "u2"), Some(json!("c")));
    let u1 = engine
        .reader()
        .profile_by_identifier(&ws(), &Identifier::new(IdentifierKind::UserId, "u1"))
        .expect("u1");
    let timeline = engine
        .reader()
        .events(&ws(), &u1.id, None, 10)
        .expect("read")
        .expect("profile");
    assert_eq!(timeline.len(), 2, "both identify calls are on the timeline");
    engine.shutdown();
}

#[test]
fn a_checkpoint_copied_in_rounds_while_events_arrive_holds_the_state_it_claims() {
    let data = Restartable::new();
    // One profile per round: the checkpoint is copied in many rounds, with applying between.
    let options = EngineOptions {
        checkpoint_round_profiles: 1,
        checkpoint_on_shutdown: false,
        checkpoint_interval: Duration::from_secs(3600),
        tick_interval: None,
        ..EngineOptions::default()
    };
    let open = || data.open(options.clone());
    let submit_round = |engine: &Engine, round: usize| {
        let messages = (0..50)
            .map(|user| {
                data.message(json!({"type": "identify", "userId": format!("u{user}"),
                    "traits": {"round": round, "last": format!("{user}-{round}")}}))
            })
            .collect();
        engine
            .ingestor()
            .submit_blocking(ws(), messages)
            .expect("committed");
    };
    let seen = |engine: &Engine| -> Vec<(Value, i64)> {
        (0..50)
            .map(|user| {
                let profile = engine
                    .reader()
                    .profile_by_identifier(
                        &ws(),
                        &Identifier::new(IdentifierKind::UserId, format!("u{user}")),
                    )
                    .expect("profile");
                (Value::Object(profile.traits), profile.event_count)
            })
            .collect()
    };
    let engine = open();
    for round in 0..10 {
        submit_round(&engine, round);
    }
    // A checkpoint is copied while more rounds are applied; nothing is checkpointed after it.
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for round in 10..60 {
                submit_round(&engine, round);
            }
        });
        assert!(engine.checkpoint(Duration::from_secs(10)));
    });
    let before = seen(&engine);
    assert_eq!(before[7].1, 60);
    drop(engine);
    // The restart loads that checkpoint and replays the log after its position: a profile the
    // checkpoint held at an older state than its position claims would come back stale.
    let engine = open();
    assert_eq!(seen(&engine), before);
    engine.shutdown();
}
