//! The dispatcher against a real HTTP receiver on a loopback port: signed webhooks whose answer a
//! journey branches on, retries with backoff under an injected clock, dead letters, exactly one
//! delivery per message id across a restart of everything, and the activity feed (entries, sends,
//! goals and exits derived by the engine, posted to a subscription, kept across a restart).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use cairn_channels::webhook::WebhookConfig;
use cairn_channels::ProviderConfig;
use cairn_core::segment::{normalize_object, Envelope};
use cairn_delivery::{RetryPolicy, SigningKey};
use cairn_dispatch::activity::ActivitySubscription;
use cairn_dispatch::{ChannelOptions, DispatchOptions, Dispatcher};
use cairn_engine::journeys::Command;
use cairn_engine::{Clock, Engine, EngineOptions, ManualClock};
use cairn_model::{Identifier, IdentifierKind, WorkspaceId};
use cairn_storage::DeliveryState;
use chrono::{Duration, TimeZone, Utc};
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::sync::Arc;

const SECRET: &str = "a-webhook-signing-secret-of-32-bytes!";
const FEED_SECRET: &str = "an-activity-feed-secret-of-32-bytes";

/// What the receiver saw, and how it answers: the first `fail_first` requests get a 500.
#[derive(Default)]
struct Receiver {
    requests: Vec<(HeaderMap, Value)>,
    fail_first: usize,
}

async fn receive(
    State(receiver): State<Arc<Mutex<Receiver>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let mut receiver = receiver.lock();
    receiver.requests.push((headers, body));
    if receiver.requests.len() <= receiver.fail_first {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "busy"})),
        );
    }
    (StatusCode::OK, Json(json!({"customer": {"tier": "gold"}})))
}

struct World {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    receiver: Arc<Mutex<Receiver>>,
    url: String,
    /// The activity feed's subscriber.
    feed: Arc<Mutex<Receiver>>,
    feed_url: String,
    _server: tokio::runtime::Runtime,
}

fn ws() -> WorkspaceId {
    WorkspaceId::new("crm")
}

impl World {
    fn new(fail_first: usize) -> World {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let receiver = Arc::new(Mutex::new(Receiver {
            fail_first,
            ..Receiver::default()
        }));
        let server = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = server
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let url = format!("http://{address}/hook");
        let feed_url = format!("http://{address}/activity");
        let feed = Arc::new(Mutex::new(Receiver::default()));
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(receiver.clone())
            .merge(
                Router::new()
                    .route("/activity", post(receive))
                    .with_state(feed.clone()),
            );
        server.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        World {
            dir: tempfile::tempdir().expect("tempdir"),
            clock: Arc::new(ManualClock::new(
                Utc.with_ymd_and_hms(2026, 5, 4, 10, 0, 0)
                    .single()
                    .expect("time"),
            )),
            receiver,
            url,
            feed,
            feed_url,
            _server: server,
        }
    }

    fn engine(&self) -> Engine {
        self.engine_with(EngineOptions::default())
    }

    /// The engine with `options` (no ticker: the tests tick by hand), deriving the activity items
    /// the dispatcher's subscription wants.
    fn engine_with(&self, options: EngineOptions) -> Engine {
        Engine::start(
            EngineOptions {
                tick_interval: None,
                activity: cairn_dispatch::activity::wants(&[self.subscription()]),
                ..options
            },
            cairn_store_sqlite::open(self.dir.path()).expect("store"),
            self.clock.clone(),
        )
        .expect("engine")
    }

    fn subscription(&self) -> ActivitySubscription {
        serde_json::from_value(json!({
            "url": self.feed_url, "secret": FEED_SECRET,
            "events": ["journey_entered", "journey_exited", "goal_reached", "message_sent"],
            "workspaces": ["crm"]
        }))
        .expect("subscription")
    }

    fn dispatcher(&self, engine: &Engine, max_attempts: u32) -> Dispatcher {
        Dispatcher::start(self.dispatch_options(max_attempts), engine).expect("dispatcher")
    }

    fn dispatch_options(&self, max_attempts: u32) -> DispatchOptions {
        DispatchOptions {
            webhook: Some(ChannelOptions {
                provider: ProviderConfig::Webhook(
                    serde_json::from_value::<WebhookConfig>(json!({"signing_secret": SECRET}))
                        .expect("config"),
                ),
                in_doubt: None,
                rate_per_second: None,
                concurrency: 4,
            }),
            retry: RetryPolicy {
                max_attempts,
                initial_backoff_ms: 60_000,
                max_backoff_ms: 600_000,
                ..RetryPolicy::default()
            },
            poll_interval_ms: 50,
            activity: vec![self.subscription()],
            ..DispatchOptions::default()
        }
    }

    fn requests(&self) -> usize {
        self.receiver.lock().requests.len()
    }
}

fn command(engine: &Engine, clock: &ManualClock, command: Command) {
    let receipt = engine
        .ingestor()
        .submit_command_blocking(ws(), &command, clock.now())
        .expect("committed");
    let outcome = engine
        .reader()
        .command_outcome(receipt.seq)
        .expect("outcome");
    assert!(outcome.ok, "{outcome:?}");
}

fn set_up(engine: &Engine, world: &World) {
    publish_template(engine, world);
    publish(
        engine,
        world,
        &format!(
            r#"{{"id": "lead-sync", "name": "Lead sync", "entry": {{"event": {{"name": "Lead Created"}}}},
            "re_entry": "concurrent", "start": "sync", "steps": [
              {{"id": "sync", "type": "send", "channel": "webhook", "template": "crm-sync",
                "settings": {{"url": "{}", "response_mapping": {{"/customer/tier": "crm_tier"}}}},
                "await_response": {{"timeout": "1d", "on_success": "mark", "on_failure": "failed", "on_timeout": "failed"}}}},
              {{"id": "mark", "type": "update_profile", "set": {{"crm_synced": true}}, "next": "done"}},
              {{"id": "failed", "type": "update_profile", "set": {{"crm_synced": false}}, "next": "done"}},
              {{"id": "done", "type": "exit"}}]}}"#,
            world.url
        ),
    );
}

fn publish_template(engine: &Engine, world: &World) {
    let template = serde_json::from_value(json!({"id": "crm-sync", "channel": "webhook",
        "default_locale": "en", "variants": {"en": {"json": "{\"email\": {{ profile.email | tojson }}, \"lead\": {{ journey.trigger.properties.source | tojson }}}"}}}))
    .expect("template");
    command(
        engine,
        &world.clock,
        Command::SaveTemplate {
            document: Box::new(template),
        },
    );
    command(
        engine,
        &world.clock,
        Command::PublishTemplate {
            template: "crm-sync".into(),
        },
    );
}

/// Saves and publishes a journey document (JSON).
fn publish(engine: &Engine, world: &World, document: &str) {
    let journey =
        cairn_journey::parse_journey(document, cairn_journey::Format::Json).expect("journey");
    let id = journey.id.to_string();
    command(
        engine,
        &world.clock,
        Command::SaveDraft {
            document: Box::new(journey),
        },
    );
    command(engine, &world.clock, Command::Publish { journey: id });
}

fn lead(engine: &Engine, clock: &ManualClock, user: &str) {
    submit(
        engine,
        clock,
        json!({"type": "identify", "userId": user, "traits": {"email": format!("{user}@example.com")}}),
    );
    submit(
        engine,
        clock,
        json!({"type": "track", "userId": user, "event": "Lead Created", "properties": {"source": "fair"}}),
    );
}

/// Stores one Segment message, as the HTTP API would.
fn submit(engine: &Engine, clock: &ManualClock, value: Value) {
    let message = normalize_object(
        value.as_object().cloned().expect("object"),
        &Envelope::default(),
        clock.now(),
    )
    .expect("valid");
    engine
        .ingestor()
        .submit_blocking(ws(), vec![message])
        .expect("stored");
}

fn traits(engine: &Engine, user: &str) -> serde_json::Map<String, Value> {
    engine
        .reader()
        .profile_by_identifier(&ws(), &Identifier::new(IdentifierKind::UserId, user))
        .expect("profile")
        .traits
}

/// Polls until `done` holds (the dispatcher works asynchronously); fails after 20 s.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_signed_webhook_answers_and_the_journey_branches_on_the_mapped_attribute() {
    let world = World::new(0);
    let engine = world.engine();
    let dispatcher = world.dispatcher(&engine, 3);
    set_up(&engine, &world);
    lead(&engine, &world.clock, "ann");
    wait_until("the journey saw the answer", || {
        traits(&engine, "ann").get("crm_synced") == Some(&json!(true))
    });
    assert_eq!(
        traits(&engine, "ann")["crm_tier"],
        "gold",
        "the response field is on the profile"
    );
    let (headers, body) = world.receiver.lock().requests[0].clone();
    assert_eq!(body, json!({"email": "ann@example.com", "lead": "fair"}));
    let signature = headers["cairn-signature"].to_str().expect("ascii");
    let key = SigningKey::new(SECRET.as_bytes().to_vec(), "secret").expect("key");
    cairn_delivery::webhook_signature::verify_webhook(
        &key,
        signature,
        &serde_json::to_vec(&body).expect("bytes"),
        Utc::now().timestamp(),
        300,
    )
    .expect("the signature verifies");
    assert!(headers.contains_key("idempotency-key"));
    dispatcher.shutdown();
    engine.shutdown();
}

#[test]
fn transient_failures_retry_with_backoff_and_a_dead_letter_takes_the_failure_path() {
    let world = World::new(2);
    let engine = world.engine();
    let dispatcher = world.dispatcher(&engine, 5);
    set_up(&engine, &world);
    lead(&engine, &world.clock, "bob");
    wait_until("the first attempt", || world.requests() == 1);
    let store = engine.delivery_store();
    let record = |state| store.in_state(state, 10).expect("read");
    wait_until("a retry is scheduled", || {
        record(DeliveryState::Retrying).len() == 1
    });
    let retry = &record(DeliveryState::Retrying)[0];
    let due = retry.next_attempt_at_ms.expect("scheduled");
    let now = world.clock.now().timestamp_millis();
    assert!(
        (30_000..=60_000).contains(&(due - now)),
        "backoff within [initial/2, initial]: {}",
        due - now
    );
    // Nothing happens before the retry is due.
    world.clock.advance(Duration::milliseconds(due - now - 1));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(world.requests(), 1);
    world.clock.advance(Duration::milliseconds(1));
    wait_until("the second attempt", || world.requests() == 2);
    world.clock.advance(Duration::minutes(10));
    wait_until("the third attempt", || world.requests() == 3);
    wait_until("the journey saw the answer", || {
        traits(&engine, "bob").get("crm_synced") == Some(&json!(true))
    });
    dispatcher.shutdown();
    engine.shutdown();

    // Always failing, two attempts at most: a dead letter, and the journey's failure path.
    let world = World::new(usize::MAX);
    let engine = world.engine();
    let dispatcher = world.dispatcher(&engine, 2);
    set_up(&engine, &world);
    lead(&engine, &world.clock, "cy");
    wait_until("the first attempt", || world.requests() == 1);
    wait_until("a retry is scheduled", || {
        engine
            .delivery_store()
            .in_state(DeliveryState::Retrying, 1)
            .expect("read")
            .len()
            == 1
    });
    world.clock.advance(Duration::minutes(5));
    wait_until("a dead letter", || {
        engine
            .delivery_store()
            .in_state(DeliveryState::Dead, 1)
            .expect("read")
            .len()
            == 1
    });
    wait_until("the failure path", || {
        traits(&engine, "cy").get("crm_synced") == Some(&json!(false))
    });
    assert_eq!(world.requests(), 2);
    dispatcher.shutdown();
    engine.shutdown();
}

#[test]
fn a_restart_of_engine_and_dispatcher_sends_nothing_twice() {
    let world = World::new(0);
    {
        let engine = world.engine();
        let dispatcher = world.dispatcher(&engine, 3);
        set_up(&engine, &world);
        lead(&engine, &world.clock, "dee");
        wait_until("sent", || world.requests() == 1);
        wait_until("answered", || {
            traits(&engine, "dee").get("crm_synced") == Some(&json!(true))
        });
        dispatcher.shutdown();
        // As if the process died: no last checkpoint, the log is replayed at the next start and the
        // same message is produced again.
        drop(engine);
    }
    let engine = Engine::start(
        EngineOptions {
            tick_interval: None,
            checkpoint_on_shutdown: false,
            ..EngineOptions::default()
        },
        cairn_store_sqlite::open(world.dir.path()).expect("store"),
        world.clock.clone(),
    )
    .expect("engine");
    let dispatcher = world.dispatcher(&engine, 3);
    engine.wait_until_applied(std::time::Duration::from_secs(10));
    assert!(engine.checkpoint(std::time::Duration::from_secs(10)));
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(world.requests(), 1, "the replayed message was recognised");
    dispatcher.shutdown();
    engine.shutdown();
}

/// A journey that sends a webhook, waits a day and has a goal: what the activity feed reports.
fn follow_up(engine: &Engine, world: &World) {
    publish_template(engine, world);
    publish(
        engine,
        world,
        &format!(
            r#"{{"id": "follow-up", "name": "Follow up", "entry": {{"event": {{"name": "Lead Created"}}}},
            "goals": [{{"id": "won", "event": "Deal Won"}}],
            "start": "sync", "steps": [
              {{"id": "sync", "type": "send", "channel": "webhook", "template": "crm-sync",
                "settings": {{"url": "{}"}}, "next": "pause"}},
              {{"id": "pause", "type": "wait", "duration": "1d", "next": "done"}},
              {{"id": "done", "type": "exit"}}]}}"#,
            world.url
        ),
    );
}

/// The feed's items as received: (type, body, headers), in arrival order, successful posts only
/// (the receiver's first `fail_first` answers were 500s).
fn feed_items(world: &World) -> Vec<(String, Value, HeaderMap)> {
    let feed = world.feed.lock();
    feed.requests
        .iter()
        .skip(feed.fail_first.min(feed.requests.len()))
        .map(|(headers, body)| {
            let kind = body["type"].as_str().unwrap_or_default().to_string();
            (kind, body.clone(), headers.clone())
        })
        .collect()
}

fn kinds(world: &World) -> Vec<String> {
    let mut kinds: Vec<String> = feed_items(world)
        .into_iter()
        .map(|(kind, ..)| kind)
        .collect();
    kinds.sort();
    kinds
}

#[test]
fn entries_sends_goals_and_exits_reach_the_activity_feed_once_each() {
    let world = World::new(0);
    let engine = world.engine();
    let dispatcher = world.dispatcher(&engine, 3);
    follow_up(&engine, &world);
    lead(&engine, &world.clock, "eve");
    wait_until("entry and send reported", || feed_items(&world).len() == 2);
    assert_eq!(kinds(&world), ["journey_entered", "message_sent"]);
    world.clock.advance(Duration::hours(2));
    submit(
        &engine,
        &world.clock,
        json!({"type": "track", "userId": "eve", "event": "Deal Won"}),
    );
    wait_until("goal and exit reported", || feed_items(&world).len() == 4);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        kinds(&world),
        [
            "goal_reached",
            "journey_entered",
            "journey_exited",
            "message_sent"
        ],
        "each fact exactly once"
    );
    let profile = engine
        .reader()
        .profile_by_identifier(&ws(), &Identifier::new(IdentifierKind::UserId, "eve"))
        .expect("profile")
        .id
        .to_string();
    let key = SigningKey::new(FEED_SECRET.as_bytes().to_vec(), "secret").expect("key");
    for (kind, body, headers) in feed_items(&world) {
        assert_eq!(body["workspace"], "crm");
        assert_eq!(body["profile_id"], profile.as_str(), "{kind}");
        assert_eq!(body["journey_id"], "follow-up", "{kind}");
        assert_eq!(
            headers["idempotency-key"].to_str().expect("ascii"),
            body["id"].as_str().expect("id"),
            "the item id is the idempotency key"
        );
        cairn_delivery::webhook_signature::verify_webhook(
            &key,
            headers["cairn-signature"].to_str().expect("ascii"),
            &serde_json::to_vec(&body).expect("bytes"),
            Utc::now().timestamp(),
            300,
        )
        .expect("signed with the subscription's secret");
        match kind.as_str() {
            "journey_entered" => assert_eq!(body["step"], "sync"),
            "message_sent" => {
                assert_eq!(body["channel"], "webhook");
                assert!(body["message_id"].is_string());
            }
            "goal_reached" => {
                assert_eq!(body["detail"], "won");
                assert_eq!(body["step"], "pause", "reached while waiting");
            }
            "journey_exited" => {
                assert_eq!(body["reason"], "goal_reached");
                assert_eq!(body["detail"], "won");
            }
            other => panic!("unexpected item {other}"),
        }
    }
    dispatcher.shutdown();
    engine.shutdown();
}

#[test]
fn activity_items_a_down_subscriber_missed_arrive_after_a_restart() {
    let world = World::new(0);
    world.feed.lock().fail_first = usize::MAX;
    {
        let engine = world.engine();
        let dispatcher = world.dispatcher(&engine, 10);
        follow_up(&engine, &world);
        lead(&engine, &world.clock, "fay");
        wait_until("both items tried and scheduled for a retry", || {
            engine
                .delivery_store()
                .in_state(DeliveryState::Retrying, 10)
                .expect("read")
                .iter()
                .filter(|record| record.channel == "activity")
                .count()
                == 2
        });
        dispatcher.shutdown();
        // As if the process died: no last checkpoint; the replay derives the same items again.
        drop(engine);
    }
    let tried = world.feed.lock().requests.len();
    world.feed.lock().fail_first = tried;
    let engine = world.engine_with(EngineOptions {
        checkpoint_on_shutdown: false,
        ..EngineOptions::default()
    });
    let dispatcher = world.dispatcher(&engine, 10);
    engine.wait_until_applied(std::time::Duration::from_secs(10));
    world.clock.advance(Duration::minutes(15));
    wait_until("the missed items arrive", || feed_items(&world).len() == 2);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        kinds(&world),
        ["journey_entered", "message_sent"],
        "each missed item once, none lost"
    );
    let sent = engine
        .delivery_store()
        .in_state(DeliveryState::Sent, 10)
        .expect("read");
    assert_eq!(
        sent.iter()
            .filter(|record| record.channel == "activity")
            .count(),
        2,
        "recorded as sent"
    );
    dispatcher.shutdown();
    engine.shutdown();
}

const POSTGRES: &str = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=5";

/// `crm`'s loyalty points in the real PostgreSQL (`scripts/services.sh` starts it), as the federated
/// attribute set `loyalty` reads them by CRM contact id.
fn loyalty_in_postgres(runtime: &tokio::runtime::Runtime) -> cairn_federated::FederatedAttributes {
    postgres(
        runtime,
        "drop table if exists dispatch_loyalty;
         create table dispatch_loyalty (contact_id text primary key, points int);
         insert into dispatch_loyalty values ('c-1', 340);",
        "select null",
    );
    loyalty_set("dispatch_loyalty", "points")
}

#[test]
fn a_webhook_body_carries_a_federated_attribute_fetched_from_postgres_at_send_time() {
    let world = World::new(0);
    let engine = engine_with_customer360(&world, true);
    let federated = loyalty_in_postgres(&world._server);
    let dispatcher = Dispatcher::start_with_federated(
        world.dispatch_options(3),
        &engine,
        std::collections::BTreeMap::from([(ws(), Arc::new(federated))]),
    )
    .expect("dispatcher");
    let fields = json!({"first": "Ann", "email": "ann@example.com", "login": "ann"});
    command(
        &engine,
        &world.clock,
        Command::UpsertSourceRecord {
            source: "crm".into(),
            id: "c-1".into(),
            fields: fields.as_object().cloned().expect("object"),
        },
    );
    let template = serde_json::from_value(json!({"id": "points", "channel": "webhook",
        "default_locale": "en", "variants": {"en": {"json": "{\"points\": {{ federated.loyalty.points | tojson }}}"}}}))
    .expect("template");
    command(
        &engine,
        &world.clock,
        Command::SaveTemplate {
            document: Box::new(template),
        },
    );
    command(
        &engine,
        &world.clock,
        Command::PublishTemplate {
            template: "points".into(),
        },
    );
    publish(
        &engine,
        &world,
        &format!(
            r#"{{"id": "points", "name": "Points", "entry": {{"event": {{"name": "Lead Created"}}}},
            "start": "sync", "steps": [
              {{"id": "sync", "type": "send", "channel": "webhook", "template": "points",
                "settings": {{"url": "{}"}}, "next": "done"}},
              {{"id": "done", "type": "exit"}}]}}"#,
            world.url
        ),
    );
    submit(
        &engine,
        &world.clock,
        json!({"type": "track", "userId": "ann", "event": "Lead Created"}),
    );
    wait_until("the webhook was sent", || world.requests() == 1);
    let (_, body) = world.receiver.lock().requests[0].clone();
    assert_eq!(body, json!({"points": 340}), "the value from PostgreSQL");
    dispatcher.shutdown();
    engine.shutdown();
}

/// The federated set `loyalty` of CRM contacts in the real PostgreSQL, reading `column` of `table`
/// by contact id, with a write-back (the table itself is left to the test).
fn loyalty_set(table: &str, column: &str) -> cairn_federated::FederatedAttributes {
    let config = cairn_federated::FederatedConfig::parse(
        &format!(
            r#"
[[attribute]]
name = "loyalty"
source = "crm"
timeout_ms = 2000
[attribute.connector]
kind = "postgres"
url = "{POSTGRES}"
query = "select {column} from {table} where contact_id = $1"
write = "update {table} set {{field}} = $1 where contact_id = $2"
"#
        ),
        false,
        "attributes.toml",
    )
    .expect("attributes");
    cairn_federated::FederatedAttributes::new(config, Arc::new(cairn_federated::SystemClock))
        .expect("connectors")
}

/// Runs `sql` on the real PostgreSQL, then reads back the first column of `query`.
fn postgres(runtime: &tokio::runtime::Runtime, sql: &str, query: &str) -> Option<String> {
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(POSTGRES, tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL is running (scripts/services.sh starts it)");
        tokio::spawn(connection);
        client.batch_execute(sql).await.expect("sql");
        let rows = client.query(query, &[]).await.unwrap_or_default();
        rows.first().and_then(|row| row.get::<_, Option<String>>(0))
    })
}

fn tier(runtime: &tokio::runtime::Runtime) -> Option<String> {
    postgres(
        runtime,
        "select 1",
        "select tier from dispatch_tiers where contact_id = 'c-1'",
    )
}

/// The engine with the CRM/shop identity rules and the federated set `loyalty` (readable and
/// writable) in workspace `crm`.
fn engine_with_customer360(world: &World, checkpoint_on_shutdown: bool) -> Engine {
    let rules = cairn_identity::Ruleset::parse(
        include_str!("../../../tests/identity/crm-shop.toml"),
        cairn_identity::DocumentFormat::Toml,
        "crm-shop.toml",
    )
    .expect("rules");
    let compiled =
        Arc::new(cairn_identity::compiled::CompiledRuleset::new(rules).expect("compiles"));
    world.engine_with(EngineOptions {
        identity: cairn_engine::customer360::IdentityConfigs::new(
            std::collections::BTreeMap::from([(ws(), compiled)]),
        ),
        federated: std::collections::BTreeMap::from([(
            ws(),
            cairn_engine::federated::DeclaredSets {
                readable: std::collections::BTreeSet::from(["loyalty".to_string()]),
                writable: std::collections::BTreeSet::from(["loyalty".to_string()]),
            },
        )]),
        checkpoint_on_shutdown,
        ..EngineOptions::default()
    })
}

/// A CRM contact `id` whose login is `login`.
fn crm_contact(engine: &Engine, world: &World, id: &str, first: &str, login: &str) {
    let fields = json!({"first": first, "email": format!("{login}@example.com"), "login": login});
    command(
        engine,
        &world.clock,
        Command::UpsertSourceRecord {
            source: "crm".into(),
            id: id.into(),
            fields: fields.as_object().cloned().expect("object"),
        },
    );
}

/// The `name` events on ann's timeline.
fn timeline_events(engine: &Engine, name: &str) -> Vec<Value> {
    let profile = engine
        .reader()
        .profile_by_identifier(&ws(), &Identifier::new(IdentifierKind::UserId, "ann"))
        .expect("profile");
    engine
        .reader()
        .events(&ws(), &profile.id, None, 100)
        .expect("read")
        .expect("profile")
        .into_iter()
        .filter(|event| event.name.as_deref() == Some(name))
        .map(|event| event.message["properties"].clone())
        .collect()
}

const PROMOTE: &str = r#"{"id": "promote", "name": "Promote", "entry": {"event": {"name": "Lead Created"}},
    "start": "promote", "steps": [
      {"id": "promote", "type": "update_profile", "set": {"promoted": true},
       "write_back": {"loyalty.tier": "'gold'"}, "next": "done"},
      {"id": "done", "type": "exit"}]}"#;

#[test]
fn a_journey_writes_a_field_back_to_postgres_retrying_while_it_fails_and_only_once() {
    let world = World::new(0);
    postgres(
        &world._server,
        "drop table if exists dispatch_tiers",
        "select null",
    );
    let federated = || {
        std::collections::BTreeMap::from([(ws(), Arc::new(loyalty_set("dispatch_tiers", "tier")))])
    };
    let engine = engine_with_customer360(&world, true);
    let dispatcher =
        Dispatcher::start_with_federated(world.dispatch_options(5), &engine, federated())
            .expect("dispatcher");
    crm_contact(&engine, &world, "c-1", "Ann", "ann");
    // Validation knows which sets can be written back (the entry event is new to the workspace).
    let codes = |document: &str| -> Vec<&'static str> {
        let document =
            cairn_journey::parse_journey(document, cairn_journey::Format::Json).expect("parses");
        let mut codes: Vec<&str> = engine
            .reader()
            .check_journey(&ws(), &document)
            .iter()
            .map(|error| error.code)
            .collect();
        codes.retain(|code| *code != "unknown_event");
        codes
    };
    assert_eq!(
        codes(&PROMOTE.replace("loyalty.tier", "loyalti.tier")),
        ["unknown_write_back"]
    );
    assert_eq!(codes(PROMOTE), Vec::<&str>::new());
    publish(&engine, &world, PROMOTE);

    // The source is down (its table does not exist yet): the write is retried, and audited.
    submit(
        &engine,
        &world.clock,
        json!({"type": "track", "userId": "ann", "event": "Lead Created"}),
    );
    let store = engine.delivery_store();
    wait_until("a retry is scheduled", || {
        store
            .in_state(DeliveryState::Retrying, 10)
            .expect("read")
            .len()
            == 1
    });
    wait_until("the failure is on the timeline", || {
        !timeline_events(&engine, "Write Back Failed").is_empty()
    });
    let failed = &timeline_events(&engine, "Write Back Failed")[0];
    assert_eq!(failed["state"], "retrying");
    assert_eq!(failed["code"], "federated_source_failed");
    assert_eq!(traits(&engine, "ann").get("promoted"), Some(&json!(true)));
    assert_eq!(
        traits(&engine, "ann").get("loyalty"),
        None,
        "nothing copied"
    );

    // The source comes back: the retry writes the tier, once, and the audit says what changed.
    postgres(
        &world._server,
        "create table dispatch_tiers (contact_id text primary key, tier text);
         insert into dispatch_tiers values ('c-1', 'silver');",
        "select null",
    );
    world.clock.advance(Duration::minutes(10));
    wait_until("the tier is written", || {
        tier(&world._server).as_deref() == Some("gold")
    });
    wait_until("the audit is on the timeline", || {
        !timeline_events(&engine, "Write Back Applied").is_empty()
    });
    let applied = &timeline_events(&engine, "Write Back Applied")[0];
    assert_eq!(applied["set"], "loyalty");
    assert_eq!(applied["field"], "tier");
    assert_eq!(applied["source"], "crm");
    assert_eq!(applied["source_id"], "c-1");
    assert_eq!(applied["value"], "gold");
    assert_eq!(applied["rows"], 1);
    assert_eq!(applied["actor"], "journey:promote/step:promote");
    dispatcher.shutdown();
    drop(store);
    drop(engine);

    // Someone changes the tier in the source; a restart replays the journey's decision, which
    // must not write again.
    postgres(
        &world._server,
        "update dispatch_tiers set tier = 'platinum' where contact_id = 'c-1'",
        "select null",
    );
    let engine = engine_with_customer360(&world, false);
    let dispatcher =
        Dispatcher::start_with_federated(world.dispatch_options(5), &engine, federated())
            .expect("dispatcher");
    engine.wait_until_applied(std::time::Duration::from_secs(10));
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(tier(&world._server).as_deref(), Some("platinum"));
    assert_eq!(timeline_events(&engine, "Write Back Applied").len(), 1);
    assert_eq!(
        store_states(&engine),
        [DeliveryState::Sent],
        "one write-back, applied"
    );
    dispatcher.shutdown();
    engine.shutdown();
}

/// The states of every write-back record.
fn store_states(engine: &Engine) -> Vec<DeliveryState> {
    engine
        .delivery_store()
        .list(&ws(), None, 100)
        .expect("read")
        .into_iter()
        .filter(|record| record.channel == "write_back")
        .map(|record| record.state)
        .collect()
}

const VIP: &str = r#"{"id": "vip", "name": "VIP", "entry": {"event": {"name": "Lead Created"}},
    "start": "points", "steps": [
      {"id": "points", "type": "fetch", "sets": ["loyalty"], "timeout": "1m",
       "on_success": "check", "on_failure": "unknown", "on_timeout": "unknown"},
      {"id": "check", "type": "decision_split", "branches": [
        {"condition": "journey.steps.points.response.loyalty.points > 100", "next": "vip"}],
       "default": "regular"},
      {"id": "vip", "type": "update_profile", "set": {"segment": "vip"}, "next": "done"},
      {"id": "regular", "type": "update_profile", "set": {"segment": "regular"}, "next": "done"},
      {"id": "unknown", "type": "update_profile", "set": {"segment": "unknown"}, "next": "done"},
      {"id": "done", "type": "exit"}]}"#;

#[test]
fn a_fetch_step_splits_on_points_read_from_postgres_and_a_failing_source_takes_the_failure_path() {
    let world = World::new(0);
    postgres(
        &world._server,
        "drop table if exists dispatch_points;
         create table dispatch_points (contact_id text primary key, points int);
         insert into dispatch_points values ('c-1', 340), ('c-2', 20);",
        "select null",
    );
    let engine = engine_with_customer360(&world, true);
    let federated = std::collections::BTreeMap::from([(
        ws(),
        Arc::new(loyalty_set("dispatch_points", "points")),
    )]);
    let dispatcher =
        Dispatcher::start_with_federated(world.dispatch_options(3), &engine, federated)
            .expect("dispatcher");
    crm_contact(&engine, &world, "c-1", "Ann", "ann");
    crm_contact(&engine, &world, "c-2", "Bo", "bo");
    crm_contact(&engine, &world, "c-3", "Cy", "cy");
    publish(&engine, &world, VIP);
    let segment = |user: &str| traits(&engine, user).get("segment").cloned();
    for user in ["ann", "bo"] {
        submit(
            &engine,
            &world.clock,
            json!({"type": "track", "userId": user, "event": "Lead Created"}),
        );
    }
    wait_until("ann's answer", || segment("ann").is_some());
    wait_until("bo's answer", || segment("bo").is_some());
    assert_eq!(segment("ann"), Some(json!("vip")), "340 points");
    assert_eq!(segment("bo"), Some(json!("regular")), "20 points");
    assert_eq!(
        traits(&engine, "ann").get("loyalty"),
        None,
        "nothing copied"
    );
    let answers = timeline_events(&engine, "Federated Attributes Fetched");
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0]["ok"], true);
    assert_eq!(answers[0]["response"], json!({"loyalty": {"points": 340}}));

    // The source goes away: the answer is a failure, and the journey takes its failure path.
    postgres(&world._server, "drop table dispatch_points", "select null");
    submit(
        &engine,
        &world.clock,
        json!({"type": "track", "userId": "cy", "event": "Lead Created"}),
    );
    wait_until("cy's answer", || segment("cy").is_some());
    assert_eq!(segment("cy"), Some(json!("unknown")));
    dispatcher.shutdown();
    engine.shutdown();
}
