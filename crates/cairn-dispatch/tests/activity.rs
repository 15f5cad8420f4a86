//! Activity feed subscriptions against a real HTTP receiver on a loopback port: every item posted
//! once per send, signed (verified here against the secret), with its id as `Idempotency-Key`; a 500
//! is transient; and bad `[[delivery.activity]]` settings stop the dispatcher at startup.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use cairn_channels::{ChannelError, WallClock};
use cairn_delivery::webhook_signature::{verify_webhook, SIGNATURE_HEADER};
use cairn_delivery::SigningKey;
use cairn_dispatch::activity::{ActivityItem, ActivityKind, ActivitySender, ActivitySubscription};
use cairn_dispatch::{DispatchError, DispatchOptions, Dispatcher};
use cairn_engine::{Engine, EngineOptions, ManualClock};
use chrono::{TimeZone, Utc};
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::sync::Arc;

const SECRET: &str = "an-activity-feed-secret-of-32-bytes";
const NOW_S: i64 = 1_777_888_999;

struct FixedClock;

impl WallClock for FixedClock {
    fn now_ms(&self) -> i64 {
        NOW_S * 1000
    }
}

/// What the receiver saw (headers and raw body), and how many first requests get a 500.
#[derive(Default)]
struct Receiver {
    requests: Vec<(HeaderMap, Vec<u8>)>,
    fail_first: usize,
}

async fn receive(
    State(receiver): State<Arc<Mutex<Receiver>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let mut receiver = receiver.lock();
    receiver.requests.push((headers, body.to_vec()));
    if receiver.requests.len() <= receiver.fail_first {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

fn serve(runtime: &tokio::runtime::Runtime, fail_first: usize) -> (String, Arc<Mutex<Receiver>>) {
    let receiver = Arc::new(Mutex::new(Receiver {
        fail_first,
        ..Receiver::default()
    }));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let url = format!(
        "http://{}/activity",
        listener.local_addr().expect("address")
    );
    let app = Router::new()
        .route("/activity", post(receive))
        .with_state(receiver.clone());
    runtime.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, receiver)
}

fn subscription(url: &str) -> ActivitySubscription {
    serde_json::from_value(json!({"url": url, "secret": SECRET, "events": ActivityKind::ALL}))
        .expect("subscription")
}

fn item(id: &str, kind: ActivityKind) -> ActivityItem {
    ActivityItem {
        id: id.into(),
        kind,
        workspace: "crm".into(),
        profile_id: "p-1".into(),
        journey_id: Some("welcome".into()),
        step: Some("send-welcome".into()),
        reason: None,
        detail: None,
        message_id: (kind == ActivityKind::MessageSent).then(|| "m-1".into()),
        channel: (kind == ActivityKind::MessageSent).then(|| "email".into()),
        at: "2026-05-04T10:00:00.000Z".into(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn items_arrive_signed_with_their_id_as_idempotency_key() {
    let runtime = runtime();
    let (url, receiver) = serve(&runtime, 0);
    let sender = ActivitySender::new(subscription(&url), 0, Arc::new(FixedClock)).expect("sender");
    let items = [
        item("e-1:entered", ActivityKind::JourneyEntered),
        item("m-1:sent", ActivityKind::MessageSent),
        item("e-1:goal", ActivityKind::GoalReached),
    ];
    for item in &items {
        runtime.block_on(sender.send(item)).expect("sent");
    }
    let key = SigningKey::new(SECRET.as_bytes().to_vec(), "secret").expect("key");
    let wrong = SigningKey::new(b"not-the-subscription-secret".to_vec(), "secret").expect("key");
    let receiver = receiver.lock();
    assert_eq!(receiver.requests.len(), items.len(), "each item once");
    for ((headers, body), item) in receiver.requests.iter().zip(&items) {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(header("idempotency-key"), item.id);
        assert_eq!(header("content-type"), "application/json");
        let signature = header(SIGNATURE_HEADER);
        assert!(
            signature.starts_with(&format!("t={NOW_S},v1=")),
            "{signature}"
        );
        verify_webhook(&key, &signature, body, NOW_S + 10, 300).expect("valid signature");
        assert!(verify_webhook(&wrong, &signature, body, NOW_S, 300).is_err());
        let posted: Value = serde_json::from_slice(body).expect("json body");
        assert_eq!(posted, serde_json::to_value(item).expect("json"));
        assert_eq!(posted["type"], item.kind.as_str());
    }
}

#[test]
fn a_receiver_answering_500_is_a_transient_failure_then_succeeds() {
    let runtime = runtime();
    let (url, receiver) = serve(&runtime, 2);
    let sender = ActivitySender::new(subscription(&url), 0, Arc::new(FixedClock)).expect("sender");
    let entered = item("e-1:entered", ActivityKind::JourneyEntered);
    for _ in 0..2 {
        let error = runtime.block_on(sender.send(&entered)).unwrap_err();
        assert!(
            matches!(error, ChannelError::Transient { .. }),
            "500 is transient: {error:?}"
        );
    }
    runtime.block_on(sender.send(&entered)).expect("third try");
    let receiver = receiver.lock();
    assert_eq!(receiver.requests.len(), 3);
    let keys: Vec<_> = receiver
        .requests
        .iter()
        .map(|(headers, _)| headers.get("idempotency-key").cloned())
        .collect();
    assert!(
        keys.iter().all(|key| key == &keys[0]),
        "one key for every attempt"
    );
}

#[test]
fn bad_activity_settings_stop_the_dispatcher_at_startup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 5, 4, 10, 0, 0)
            .single()
            .expect("time"),
    ));
    let engine = Engine::start(
        EngineOptions {
            tick_interval: None,
            ..EngineOptions::default()
        },
        cairn_store_sqlite::open(dir.path()).expect("store"),
        clock,
    )
    .expect("engine");
    let good = subscription("http://127.0.0.1:9/activity");
    let short_secret = ActivitySubscription {
        secret: "short".into(),
        ..good.clone()
    };
    let options = DispatchOptions {
        activity: vec![good, short_secret],
        ..DispatchOptions::default()
    };
    match Dispatcher::start(options, &engine) {
        Err(DispatchError::Config(reason)) => {
            assert_eq!(
                reason,
                "delivery.activity[1].secret: must be at least 16 bytes"
            );
        }
        Err(other) => panic!("expected a configuration error, got {other}"),
        Ok(_) => panic!("a short secret must be refused"),
    }
    let unknown = serde_json::from_value::<DispatchOptions>(json!({
        "activity": [{"url": "http://x", "secret": SECRET, "events": ["email_opened"]}]
    }))
    .unwrap_err()
    .to_string();
    assert!(
        unknown.contains("unknown variant `email_opened`"),
        "{unknown}"
    );
}
