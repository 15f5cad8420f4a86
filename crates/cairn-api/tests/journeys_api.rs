//! Journeys through the HTTP API end to end, on a real server with a manual clock and no background
//! ticker: the cart-abandonment template over three simulated days (exact outbox messages, per-step
//! statistics, traces), the whole lifecycle with every refused transition, enrollment by API,
//! audiences, test mode and the catalog.

mod common;

use chrono::Duration;
use common::{assert_code, get, manual_time, post, post_json, put_yaml, send, start, Server};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const CART: &str = include_str!("../../../journeys/templates/cart-abandonment.yaml");
const TOKEN: &str = "tok_acme";

/// A track call for an acme user at the server clock's time.
async fn track(server: &Server, user: &str, event: &str, properties: Value) {
    let (status, body) = post(
        server,
        "/v1/track",
        "wk_acme",
        json!({"userId": user, "event": event, "properties": properties, "timestamp": server.now_text()}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn profile_id(server: &Server, user: &str) -> String {
    let (status, profile) = get(
        server,
        &format!("/api/v1/profiles/lookup?user_id={user}"),
        TOKEN,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{profile}");
    profile["id"].as_str().expect("id").to_string()
}

/// A user's outbox messages, oldest first.
async fn messages(server: &Server, user: &str) -> Vec<Value> {
    let id = profile_id(server, user).await;
    let (status, body) = get(server, &format!("/api/v1/profiles/{id}/messages"), TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut messages = body["messages"].as_array().cloned().unwrap_or_default();
    messages.reverse();
    messages
}

/// (channel, template, time) of a user's messages, oldest first.
async fn sent(server: &Server, user: &str) -> Vec<(String, String, String)> {
    messages(server, user)
        .await
        .iter()
        .map(|message| {
            let text = |key: &str| message[key].as_str().unwrap_or_default().to_string();
            (text("channel"), text("template"), text("at"))
        })
        .collect()
}

async fn journey(server: &Server, id: &str) -> Value {
    let (status, body) = get(server, &format!("/api/v1/journeys/{id}"), TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn publish_yaml(server: &Server, id: &str, yaml: &str) -> Value {
    let (status, body) = put_yaml(server, &format!("/api/v1/journeys/{id}"), TOKEN, yaml).await;
    assert!(status.is_success(), "{status} {body}");
    assert_eq!(body["validation"]["valid"], true, "{body}");
    let (status, body) = post_json(
        server,
        &format!("/api/v1/journeys/{id}/publish"),
        TOKEN,
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// The workspace has seen these events before (validation checks names against what was seen).
async fn seed_catalog(server: &Server, events: &[&str]) {
    for event in events {
        track(server, "seed", event, json!({})).await;
    }
}

fn at(start: &str, offset: Duration) -> String {
    let start = chrono::DateTime::parse_from_rfc3339(start).expect("time");
    (start + offset)
        .with_timezone(&chrono::Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[tokio::test]
async fn cart_abandonment_sends_exactly_the_expected_messages_over_three_days() {
    let server = start(manual_time()).await;
    seed_catalog(
        &server,
        &["Cart Abandoned", "Order Completed", "Unsubscribed"],
    )
    .await;
    let body = publish_yaml(&server, "cart-abandonment", CART).await;
    assert_eq!(body["published_version"], 1);
    assert_eq!(body["status"], "published");

    let t0 = server.now_text();
    // ann buys within the hour; bob never buys nor opens; cy opens the email; dan abandons again
    // while enrolled and again after his enrollment ended, both inside the 7-day cool-down; eve buys
    // after the email, before the SMS.
    for user in ["ann", "bob", "cy", "dan", "eve"] {
        track(&server, user, "Cart Abandoned", json!({"cart_value": 80})).await;
    }
    server.pass(Duration::minutes(30)).await;
    track(&server, "ann", "Order Completed", json!({"total": 80})).await;
    server.pass(Duration::minutes(31)).await;
    let email = |user_time: Duration| {
        (
            "email".to_string(),
            "cart-reminder".to_string(),
            at(&t0, user_time),
        )
    };
    let sms = |user_time: Duration| {
        (
            "sms".to_string(),
            "cart-reminder-sms".to_string(),
            at(&t0, user_time),
        )
    };
    for user in ["bob", "cy", "dan", "eve"] {
        assert_eq!(
            sent(&server, user).await,
            vec![email(Duration::hours(1))],
            "{user}"
        );
    }
    assert!(sent(&server, "ann").await.is_empty());

    server.pass(Duration::minutes(59)).await; // t0 + 2h
    track(&server, "dan", "Cart Abandoned", json!({"cart_value": 15})).await;
    server.pass(Duration::hours(1)).await; // t0 + 3h
    let cy_email = messages(&server, "cy").await[0]["message_id"]
        .as_str()
        .expect("message id")
        .to_string();
    track(
        &server,
        "cy",
        "Email Opened",
        json!({"message_id": cy_email}),
    )
    .await;
    server.pass(Duration::hours(2)).await; // t0 + 5h
    track(&server, "eve", "Order Completed", json!({"total": 80})).await;
    server.pass(Duration::hours(20)).await; // t0 + 25h
    server.pass(Duration::hours(23)).await; // t0 + 2d
    track(&server, "dan", "Cart Abandoned", json!({"cart_value": 99})).await;
    server.pass(Duration::days(1)).await; // t0 + 3d

    assert!(sent(&server, "ann").await.is_empty(), "ann bought in time");
    assert_eq!(
        sent(&server, "bob").await,
        vec![email(Duration::hours(1)), sms(Duration::hours(25))]
    );
    assert_eq!(
        sent(&server, "cy").await,
        vec![email(Duration::hours(1))],
        "cy opened the email"
    );
    assert_eq!(
        sent(&server, "dan").await,
        vec![email(Duration::hours(1)), sms(Duration::hours(25))],
        "dan's later carts fall inside the cool-down"
    );
    assert_eq!(
        sent(&server, "eve").await,
        vec![email(Duration::hours(1))],
        "eve bought before the SMS"
    );

    // Per-step statistics.
    let (status, stats) = get(&server, "/api/v1/journeys/cart-abandonment/stats", TOKEN).await;
    assert_eq!(status, StatusCode::OK);
    let version = &stats["versions"][0];
    assert_eq!(version["entered"], 5, "{stats}");
    assert_eq!(version["current"], 0);
    assert_eq!(version["ended"]["goal_reached"], 2);
    assert_eq!(version["ended"]["completed"], 3);
    assert_eq!(version["goal_conversion"], 0.4);
    let step = |id: &str| {
        version["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .find(|step| step["step"] == id)
            .cloned()
            .expect("step")
    };
    assert_eq!(step("wait_for_purchase")["entered"], 5);
    assert_eq!(step("reminder_email")["entered"], 4);
    assert_eq!(step("reminder_sms")["entered"], 2);
    assert_eq!(step("wait_a_day")["ended"]["goal_reached"], 1, "eve");

    // Why did bob get the SMS? The trace says: no purchase within the hour, the email was not
    // opened within its window.
    let bob = profile_id(&server, "bob").await;
    let (status, trace) = get(
        &server,
        &format!("/api/v1/profiles/{bob}/journeys/cart-abandonment/trace"),
        TOKEN,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{trace}");
    let entries = trace["entries"].as_array().expect("entries");
    let decision = |kind: &str| {
        entries
            .iter()
            .find(|entry| entry["decision"]["kind"] == kind)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} in {trace:#}"))
    };
    assert_eq!(decision("event_timeout")["step"], "wait_for_purchase");
    let engagement = decision("engagement");
    assert_eq!(engagement["step"], "opened_reminder");
    assert_eq!(engagement["decision"]["yes"], false);
    assert!(engagement["explanation"]
        .as_str()
        .is_some_and(|text| !text.is_empty()));
    let sms_sent = entries
        .iter()
        .filter(|entry| entry["decision"]["kind"] == "sent")
        .map(|entry| entry["step"].as_str().unwrap_or_default())
        .collect::<Vec<_>>();
    assert_eq!(sms_sent, vec!["reminder_email", "reminder_sms"]);

    // cy's engagement said yes.
    let cy = profile_id(&server, "cy").await;
    let (_, trace) = get(
        &server,
        &format!("/api/v1/profiles/{cy}/journeys/cart-abandonment/trace"),
        TOKEN,
    )
    .await;
    let engagement = trace["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|entry| entry["decision"]["kind"] == "engagement")
        .cloned()
        .expect("engagement");
    assert_eq!(engagement["decision"]["yes"], true);

    // dan entered once (the history says so) and has no active enrollment.
    let dan = profile_id(&server, "dan").await;
    let (_, view) = get(&server, &format!("/api/v1/profiles/{dan}/journeys"), TOKEN).await;
    assert_eq!(view["history"][0]["journey"], "cart-abandonment", "{view}");
    assert_eq!(view["history"][0]["entries"], 1);
    assert_eq!(view["enrollments"], json!([]));

    // Once the cool-down has passed since his first entry, dan enters again.
    server.pass(Duration::days(4) + Duration::minutes(1)).await;
    track(&server, "dan", "Cart Abandoned", json!({"cart_value": 99})).await;
    server.pass(Duration::hours(1)).await;
    assert_eq!(sent(&server, "dan").await.len(), 3);
}

const NURTURE_V1: &str = r#"
id: nurture
name: Trial nurture
entry:
  event: {name: Trial Started}
re_entry: once
pause_behaviour: hold
start: wait
steps:
  - {id: wait, type: wait, duration: 1d, next: mail}
  - {id: mail, type: send, channel: email, template: day-one, next: done}
  - {id: done, type: exit}
"#;

/// Asserts a refused call: status, code, and the journey exactly as before.
async fn assert_refused(
    server: &Server,
    method: Method,
    path: &str,
    body: Value,
    expected: (StatusCode, &str),
) {
    let before = journey(server, "nurture").await;
    let (status, answer) = send(
        server,
        method.clone(),
        path,
        TOKEN,
        Some("application/json"),
        body.to_string(),
    )
    .await;
    assert_code(
        status,
        &answer,
        expected.0,
        expected.1,
        &format!("{method} {path}"),
    );
    assert_eq!(
        journey(server, "nurture").await,
        before,
        "{method} {path} changed nothing"
    );
}

#[tokio::test]
async fn the_lifecycle_through_the_api_with_every_refused_transition() {
    let server = start(manual_time()).await;
    seed_catalog(&server, &["Trial Started"]).await;
    let document =
        cairn_journey::parse_journey(NURTURE_V1, cairn_journey::Format::Yaml).expect("document");
    // Create (JSON), and a second create of the same id is a conflict.
    let (status, created) = post_json(
        &server,
        "/api/v1/journeys",
        TOKEN,
        serde_json::to_value(&document).expect("json"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["status"], "draft");
    assert_eq!(created["versions"], json!([]));
    assert_eq!(created["validation"], json!({"valid": true, "errors": []}));
    let (status, again) = post_json(
        &server,
        "/api/v1/journeys",
        TOKEN,
        serde_json::to_value(&document).expect("json"),
    )
    .await;
    assert_code(
        status,
        &again,
        StatusCode::CONFLICT,
        "journey_conflict",
        "create twice",
    );

    // Draft edits.
    let renamed = NURTURE_V1.replace("name: Trial nurture", "name: Trial nurture (edited)");
    let (status, edited) = put_yaml(&server, "/api/v1/journeys/nurture", TOKEN, &renamed).await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(
        journey(&server, "nurture").await["name"],
        "Trial nurture (edited)"
    );

    // Transitions a draft does not allow.
    for action in ["pause", "resume", "stop"] {
        assert_refused(
            &server,
            Method::POST,
            &format!("/api/v1/journeys/nurture/{action}"),
            json!({"reason": "test"}),
            (StatusCode::CONFLICT, "journey_conflict"),
        )
        .await;
    }

    // Publish version 1; publishing an unchanged draft again is refused.
    let (status, published) = post_json(
        &server,
        "/api/v1/journeys/nurture/publish",
        TOKEN,
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{published}");
    assert_eq!(published["published_version"], 1);
    assert_eq!(published["unpublished_changes"], false);
    assert_refused(
        &server,
        Method::POST,
        "/api/v1/journeys/nurture/publish",
        json!({}),
        (StatusCode::CONFLICT, "journey_conflict"),
    )
    .await;
    for action in ["archive", "resume"] {
        assert_refused(
            &server,
            Method::POST,
            &format!("/api/v1/journeys/nurture/{action}"),
            json!({}),
            (StatusCode::CONFLICT, "journey_conflict"),
        )
        .await;
    }

    // ann enters version 1; version 2 changes the template; bob enters version 2. Each finishes on
    // the version they entered.
    track(&server, "ann", "Trial Started", json!({})).await;
    let v2 = renamed.replace("template: day-one", "template: day-one-v2");
    let (status, draft) = put_yaml(&server, "/api/v1/journeys/nurture", TOKEN, &v2).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(draft["unpublished_changes"], true);
    assert_eq!(draft["latest_version"], 1);
    let (status, published) = post_json(
        &server,
        "/api/v1/journeys/nurture/publish",
        TOKEN,
        json!({}),
    )
    .await;
    assert_eq!(
        (status, published["published_version"].clone()),
        (StatusCode::CREATED, json!(2))
    );
    let (_, version_one) = get(&server, "/api/v1/journeys/nurture/versions/1", TOKEN).await;
    assert_eq!(version_one["document"]["steps"][1]["template"], "day-one");
    assert_eq!(version_one["latest"], false);
    track(&server, "bob", "Trial Started", json!({})).await;
    let ann = profile_id(&server, "ann").await;
    let (_, view) = get(&server, &format!("/api/v1/profiles/{ann}/journeys"), TOKEN).await;
    assert_eq!(view["enrollments"][0]["version"], 1, "{view}");
    assert_eq!(view["enrollments"][0]["step"], "wait");
    server.pass(Duration::days(1)).await;
    let templates = |messages: Vec<(String, String, String)>| {
        messages
            .into_iter()
            .map(|(_, template, _)| template)
            .collect::<Vec<_>>()
    };
    assert_eq!(templates(sent(&server, "ann").await), vec!["day-one"]);
    assert_eq!(templates(sent(&server, "bob").await), vec!["day-one-v2"]);

    // Pause mid-wait with `hold`: cy's wait ends while paused and she is held at the send step; dan
    // cannot enter while paused; on resume cy's message goes out at the resume instant.
    track(&server, "cy", "Trial Started", json!({})).await;
    server.pass(Duration::hours(12)).await;
    let (status, paused) =
        post_json(&server, "/api/v1/journeys/nurture/pause", TOKEN, json!({})).await;
    assert_eq!(
        (status, paused["status"].clone()),
        (StatusCode::OK, json!("paused"))
    );
    assert_refused(
        &server,
        Method::POST,
        "/api/v1/journeys/nurture/pause",
        json!({}),
        (StatusCode::CONFLICT, "journey_conflict"),
    )
    .await;
    server.pass(Duration::days(1)).await;
    track(&server, "dan", "Trial Started", json!({})).await;
    assert!(sent(&server, "cy").await.is_empty(), "held while paused");
    let cy = profile_id(&server, "cy").await;
    let (_, view) = get(&server, &format!("/api/v1/profiles/{cy}/journeys"), TOKEN).await;
    assert_eq!(view["enrollments"][0]["status"], "held", "{view}");
    server.pass(Duration::hours(1)).await;
    let resumed_at = server.now_text();
    let (status, resumed) =
        post_json(&server, "/api/v1/journeys/nurture/resume", TOKEN, json!({})).await;
    assert_eq!(
        (status, resumed["status"].clone()),
        (StatusCode::OK, json!("published"))
    );
    assert_eq!(
        sent(&server, "cy").await,
        vec![("email".into(), "day-one-v2".into(), resumed_at)]
    );
    let dan = profile_id(&server, "dan").await;
    let (_, view) = get(&server, &format!("/api/v1/profiles/{dan}/journeys"), TOKEN).await;
    assert_eq!(
        view["history"],
        json!([]),
        "dan did not enter a paused journey: {view}"
    );

    // Stop exits everyone with the reason; a stopped journey takes no entries and cannot be
    // published, paused or resumed.
    track(&server, "eve", "Trial Started", json!({})).await;
    assert_refused(
        &server,
        Method::POST,
        "/api/v1/journeys/nurture/stop",
        json!({}),
        (StatusCode::BAD_REQUEST, "invalid_body"),
    )
    .await;
    let (status, stopped) = post_json(
        &server,
        "/api/v1/journeys/nurture/stop",
        TOKEN,
        json!({"reason": "trial programme ended"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{stopped}");
    assert_eq!(stopped["status"], "stopped");
    assert_eq!(stopped["stop_reason"], "trial programme ended");
    let (_, stats) = get(&server, "/api/v1/journeys/nurture/stats", TOKEN).await;
    assert_eq!(stats["versions"][1]["ended"]["stopped"], 1, "eve: {stats}");
    assert_eq!(stats["versions"][1]["current"], 0);
    server.pass(Duration::days(2)).await;
    assert!(sent(&server, "eve").await.is_empty());
    track(&server, "fay", "Trial Started", json!({})).await;
    let fay = profile_id(&server, "fay").await;
    let (_, view) = get(&server, &format!("/api/v1/profiles/{fay}/journeys"), TOKEN).await;
    assert_eq!(view["history"], json!([]));
    let v3 = v2.replace("duration: 1d", "duration: 2d");
    let (status, _) = put_yaml(&server, "/api/v1/journeys/nurture", TOKEN, &v3).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a stopped journey's draft stays editable"
    );
    for action in ["publish", "pause", "resume"] {
        assert_refused(
            &server,
            Method::POST,
            &format!("/api/v1/journeys/nurture/{action}"),
            json!({}),
            (StatusCode::CONFLICT, "journey_conflict"),
        )
        .await;
    }

    // Archive: hidden from the list unless asked for; no longer editable.
    let (status, archived) = post_json(
        &server,
        "/api/v1/journeys/nurture/archive",
        TOKEN,
        json!({}),
    )
    .await;
    assert_eq!(
        (status, archived["status"].clone()),
        (StatusCode::OK, json!("archived"))
    );
    let (_, list) = get(&server, "/api/v1/journeys", TOKEN).await;
    assert_eq!(list["journeys"], json!([]));
    let (_, list) = get(&server, "/api/v1/journeys?include_archived=true", TOKEN).await;
    assert_eq!(list["journeys"][0]["id"], "nurture");
    let before = journey(&server, "nurture").await;
    let (status, body) = put_yaml(&server, "/api/v1/journeys/nurture", TOKEN, NURTURE_V1).await;
    assert_code(
        status,
        &body,
        StatusCode::CONFLICT,
        "journey_conflict",
        "edit archived",
    );
    assert_eq!(journey(&server, "nurture").await, before);
    for action in ["archive", "pause", "publish"] {
        assert_refused(
            &server,
            Method::POST,
            &format!("/api/v1/journeys/nurture/{action}"),
            json!({}),
            (StatusCode::CONFLICT, "journey_conflict"),
        )
        .await;
    }
}

#[tokio::test]
async fn api_entry_audiences_test_mode_and_the_catalog() {
    let server = start(manual_time()).await;
    // Audiences: validated against the events the workspace has seen, created (201), replaced
    // (200), kept current by the events that follow.
    seed_catalog(&server, &["Product Viewed", "Order Completed"]).await;
    let browsers = r#"{"id": "browsers", "name": "Browsers", "condition": "count(\"Product Viewed\", 7d) > 0 and count(\"Order Completed\", 7d) == 0"}"#;
    let (status, body) = send(
        &server,
        Method::PUT,
        "/api/v1/audiences/browsers",
        TOKEN,
        Some("application/json"),
        browsers,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["name"], "Browsers");
    track(&server, "ann", "Product Viewed", json!({"sku": "a"})).await;
    track(&server, "cy", "Product Viewed", json!({"sku": "c"})).await;
    track(&server, "bob", "Order Completed", json!({})).await;
    track(&server, "bob", "Product Viewed", json!({"sku": "b"})).await;
    let (status, body) = put_yaml(
        &server,
        "/api/v1/audiences/browsers",
        TOKEN,
        "id: browsers\nname: Browsed, did not buy\ncondition: 'count(\"Product Viewed\", 7d) > 0 and count(\"Order Completed\", 7d) == 0'\n",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["members"], 2, "ann and cy, not bob: {body}");
    let (_, page) = get(&server, "/api/v1/audiences/browsers/members?limit=1", TOKEN).await;
    assert_eq!(page["total"], 2);
    assert_eq!(page["members"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["next_offset"], 1);
    let (_, rest) = get(
        &server,
        "/api/v1/audiences/browsers/members?limit=1&offset=1",
        TOKEN,
    )
    .await;
    assert_eq!(rest["next_offset"], Value::Null);
    let mut members = vec![page["members"][0].clone(), rest["members"][0].clone()];
    members.sort_by_key(|id| id.as_str().unwrap_or_default().to_string());
    let mut expected = vec![
        json!(profile_id(&server, "ann").await),
        json!(profile_id(&server, "cy").await),
    ];
    expected.sort_by_key(|id| id.as_str().unwrap_or_default().to_string());
    assert_eq!(members, expected);
    let ann = profile_id(&server, "ann").await;
    let (_, audiences) = get(&server, &format!("/api/v1/profiles/{ann}/audiences"), TOKEN).await;
    assert_eq!(
        audiences["audiences"],
        json!([{"id": "browsers", "name": "Browsed, did not buy"}])
    );
    let (_, list) = get(&server, "/api/v1/audiences", TOKEN).await;
    assert_eq!(list["audiences"][0]["id"], "browsers");

    // The catalog: what validation knows.
    let (status, catalog) = get(&server, "/api/v1/catalog", TOKEN).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        catalog["events"],
        json!(["Order Completed", "Product Viewed"])
    );
    assert_eq!(catalog["audiences"], json!(["browsers"]));

    // Enrollment by API, with data for the journey; `once` refuses a second enrollment.
    let welcome = r#"
id: vip-welcome
name: VIP welcome
entry: {api: {}}
start: coupon
steps:
  - id: coupon
    type: decision_split
    branches: [{name: with_coupon, condition: 'journey.trigger.coupon == "HELLO"', next: hello}]
    default: plain
  - {id: hello, type: send, channel: email, template: vip-welcome, next: done}
  - {id: plain, type: send, channel: email, template: plain-welcome, next: done}
  - {id: done, type: exit}
"#;
    publish_yaml(&server, "vip-welcome", welcome).await;
    let (status, enrolled) = post_json(
        &server,
        "/api/v1/journeys/vip-welcome/enroll",
        TOKEN,
        json!({"user_id": "ann", "data": {"coupon": "HELLO"}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{enrolled}");
    assert_eq!(enrolled["profile_id"], json!(ann));
    assert_eq!(enrolled["version"], 1);
    assert!(enrolled["enrollment"].is_u64());
    let sent_to_ann = messages(&server, "ann").await;
    assert_eq!(sent_to_ann.len(), 1);
    assert_eq!(
        sent_to_ann[0]["template"], "vip-welcome",
        "the enrollment's data decided the branch"
    );
    let (status, body) = post_json(
        &server,
        "/api/v1/journeys/vip-welcome/enroll",
        TOKEN,
        json!({"profile_id": ann}),
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::CONFLICT,
        "enrollment_refused",
        "twice",
    );
    let (status, body) = post_json(
        &server,
        "/api/v1/journeys/vip-welcome/enroll",
        TOKEN,
        json!({"user_id": "nobody"}),
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "profile_not_found",
        "unknown user",
    );

    // Test mode: the draft for a synthetic customer, a version for an existing one.
    seed_catalog(&server, &["Cart Abandoned", "Unsubscribed"]).await;
    publish_yaml(&server, "cart-abandonment", CART).await;
    let (status, result) = post_json(
        &server,
        "/api/v1/journeys/cart-abandonment/test",
        TOKEN,
        json!({
            "events": [
                {"event": "Cart Abandoned", "timestamp": "2025-03-03T10:00:00Z", "properties": {"cart_value": 80}},
                {"event": "Email Opened", "after": "5h", "properties": {"message_step": "reminder_email"}}
            ],
            "until": "3d"
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    let messages_sent: Vec<(&str, &str)> = result["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["at"].as_str().unwrap_or(""),
                m["template"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        messages_sent,
        vec![("2025-03-03T11:00:00.000Z", "cart-reminder")]
    );
    assert_eq!(result["ended"][0]["reason"], "completed");
    assert!(result["path"]
        .as_array()
        .expect("path")
        .iter()
        .any(|entry| entry["step"] == "opened_reminder"));
    let (status, result) = post_json(
        &server,
        "/api/v1/journeys/cart-abandonment/test",
        TOKEN,
        json!({"version": 1, "profile_id": ann, "events": [{"event": "Cart Abandoned", "after": "0s"}], "until": "2d"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["profile_id"], json!(ann));
    assert_eq!(
        result["messages"].as_array().map(Vec::len),
        Some(2),
        "email and SMS"
    );
    assert_eq!(
        result["start"],
        json!(server.now_text()),
        "starts now by default"
    );
    let (status, body) = post_json(
        &server,
        "/api/v1/journeys/cart-abandonment/test",
        TOKEN,
        json!({"version": 7}),
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "journey_not_found",
        "version 7",
    );
    // Test mode stores nothing.
    assert_eq!(messages(&server, "ann").await.len(), 1);
}
