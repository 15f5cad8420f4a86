//! The HTTP API end to end: a real server on a loopback port, a real HTTP client, the real store.
//!
//! Proves the tracking API's answers and error codes, that nothing from a rejected request is stored,
//! that workspaces cannot see or write each other's data, pagination, skew correction under an
//! injected clock, back-pressure (429 + Retry-After) and that the OpenAPI document covers every route.

mod common;

use cairn_engine::EngineOptions;
use cairn_model::WorkspaceId;
use chrono::{TimeZone, Utc};
use common::{assert_code, client, get, post, start, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::io::Write;

async fn event_count(server: &Server, workspace: &str) -> u64 {
    let engine = server.engine.as_ref().expect("running");
    engine.reader().event_count(&WorkspaceId::new(workspace))
}

/// The acme timeline of the profile found by a lookup query.
async fn timeline(server: &Server, lookup: &str) -> Value {
    let (_, profile) = get(server, lookup, "tok_acme").await;
    let id = profile["id"].as_str().expect("the lookup finds a profile");
    get(server, &format!("/api/v1/profiles/{id}/events"), "tok_acme")
        .await
        .1
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

#[tokio::test]
async fn bad_input_gets_its_status_and_code_and_stores_nothing() {
    let server = start(EngineOptions::default()).await;
    let deep = format!(
        "{{\"userId\": \"u\", \"event\": \"E\", \"properties\": {}{}}}",
        "{\"a\":".repeat(200),
        "1".to_string() + &"}".repeat(200)
    );
    let big_message =
        json!({"userId": "u", "event": "E", "properties": {"blob": "x".repeat(33 * 1024)}})
            .to_string();
    let big_batch = json!({"batch": (0..20).map(|i| json!({"type": "track", "userId": "u", "event": "E", "messageId": i, "properties": {"blob": "x".repeat(30 * 1024)}})).collect::<Vec<_>>()}).to_string();
    let bomb = gzip(&vec![b' '; 2 * 1024 * 1024]);
    type Case = (
        &'static str,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        Vec<u8>,
        u16,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "malformed JSON",
            "/v1/track",
            Some("application/json"),
            None,
            b"{\"userId\": ".to_vec(),
            400,
            "invalid_json",
        ),
        (
            "wrong content type",
            "/v1/track",
            Some("application/x-www-form-urlencoded"),
            None,
            b"userId=u&event=E".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "missing ids",
            "/v1/track",
            Some("application/json"),
            None,
            br#"{"event": "E"}"#.to_vec(),
            400,
            "missing_identity",
        ),
        (
            "track without event",
            "/v1/track",
            Some("application/json"),
            None,
            br#"{"userId": "u"}"#.to_vec(),
            400,
            "missing_event",
        ),
        (
            "oversize message",
            "/v1/track",
            Some("application/json"),
            None,
            big_message.into_bytes(),
            413,
            "message_too_large",
        ),
        (
            "oversize batch",
            "/v1/batch",
            Some("application/json"),
            None,
            big_batch.into_bytes(),
            413,
            "batch_too_large",
        ),
        (
            "gzip bomb",
            "/v1/batch",
            Some("application/json"),
            Some("gzip"),
            bomb,
            413,
            "batch_too_large",
        ),
        (
            "corrupt gzip",
            "/v1/batch",
            Some("application/json"),
            Some("gzip"),
            b"not gzip at all".to_vec(),
            415,
            "unsupported_encoding",
        ),
        (
            "unknown encoding",
            "/v1/batch",
            Some("application/json"),
            Some("br"),
            b"{}".to_vec(),
            415,
            "unsupported_encoding",
        ),
        (
            "invalid timestamp",
            "/v1/track",
            Some("application/json"),
            None,
            br#"{"userId": "u", "event": "E", "timestamp": "31/12/2024"}"#.to_vec(),
            400,
            "invalid_timestamp",
        ),
        (
            "non-UTF-8 bytes",
            "/v1/track",
            Some("application/json"),
            None,
            b"{\"userId\": \"\xff\xfe\", \"event\": \"E\"}".to_vec(),
            400,
            "invalid_utf8",
        ),
        (
            "deeply nested JSON",
            "/v1/track",
            Some("application/json"),
            None,
            deep.into_bytes(),
            400,
            "invalid_json",
        ),
        (
            "empty batch",
            "/v1/batch",
            Some("application/json"),
            None,
            br#"{"batch": []}"#.to_vec(),
            400,
            "empty_batch",
        ),
        (
            "batch of only invalid messages",
            "/v1/batch",
            Some("application/json"),
            None,
            br#"{"batch": [{"type": "track", "userId": "u"}]}"#.to_vec(),
            400,
            "missing_event",
        ),
        (
            "unknown type in batch",
            "/v1/batch",
            None,
            None,
            br#"{"batch": [{"type": "purchase", "userId": "u"}]}"#.to_vec(),
            400,
            "invalid_type",
        ),
    ];
    for (name, path, content_type, encoding, body, status, code) in cases {
        let mut request = client()
            .post(format!("{}{path}", server.base))
            .basic_auth("wk_acme", Some(""))
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(encoding) = encoding {
            request = request.header("content-encoding", encoding);
        }
        let response = request.send().await.expect("request");
        assert_eq!(response.status().as_u16(), status, "{name}");
        let body: Value = response.json().await.expect("JSON error body");
        assert_eq!(body["code"], json!(code), "{name}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}"
        );
    }
    let valid = json!({"userId": "u", "event": "E"});
    let (status, body) = post(&server, "/v1/track", "wk_nobody", valid.clone()).await;
    assert_eq!(
        (status.as_u16(), body["code"].clone()),
        (401, json!("invalid_write_key"))
    );
    let response = client()
        .post(format!("{}/v1/track", server.base))
        .json(&valid)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(
        response.json::<Value>().await.expect("json")["code"],
        json!("missing_write_key")
    );
    assert_eq!(
        event_count(&server, "acme").await,
        0,
        "nothing from a rejected request is stored"
    );

    let metrics = client()
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("cairn_events_rejected_total{code=\"missing_identity\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn partial_batches_keep_valid_messages_and_duplicates_are_dropped() {
    let server = start(EngineOptions::default()).await;
    let batch = json!({"batch": [
        {"type": "track", "userId": "u1", "event": "A", "messageId": "m1"},
        {"type": "track", "event": "no ids", "messageId": "m2"},
        {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}, "messageId": "m3"},
    ]});
    let (status, body) = post(&server, "/v1/batch", "wk_acme", batch.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["accepted"], json!(2));
    assert_eq!(
        body["rejected"],
        json!([{"index": 1, "code": "missing_identity", "message": "a message needs a `userId` or an `anonymousId`"}])
    );
    let (status, body) = post(&server, "/v1/batch", "wk_acme", batch).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["accepted"].clone(), body["duplicates"].clone()),
        (json!(0), json!(2)),
        "a client retry stores nothing twice"
    );
    assert_eq!(event_count(&server, "acme").await, 2);
}

#[tokio::test]
async fn gzip_bodies_text_plain_and_write_keys_in_the_body_are_accepted() {
    let server = start(EngineOptions::default()).await;
    let body =
        json!({"batch": [{"type": "track", "userId": "u1", "event": "Gzipped"}]}).to_string();
    let response = client()
        .post(format!("{}/v1/batch", server.base))
        .basic_auth("wk_acme", Some(""))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gzip(body.as_bytes()))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    // analytics.js: short path, text/plain, write key in the body, no Authorization header.
    let response = client()
        .post(format!("{}/v1/t", server.base))
        .header("content-type", "text/plain")
        .body(json!({"writeKey": "wk_acme", "anonymousId": "a1", "event": "Browser"}).to_string())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.as_bytes()),
        Some(&b"*"[..])
    );
    let events = timeline(&server, "/api/v1/profiles/lookup?anonymous_id=a1").await;
    assert_eq!(events["events"][0]["message"]["event"], json!("Browser"));
    assert!(
        events["events"][0]["message"].get("writeKey").is_none(),
        "the write key is never stored"
    );
    assert_eq!(event_count(&server, "acme").await, 2);
}

#[tokio::test]
async fn workspaces_cannot_read_or_write_each_other() {
    let server = start(EngineOptions::default()).await;
    post(
        &server,
        "/v1/identify",
        "wk_acme",
        json!({"userId": "shared-id", "traits": {"company": "acme"}}),
    )
    .await;
    post(
        &server,
        "/v1/identify",
        "wk_globex",
        json!({"userId": "shared-id", "traits": {"company": "globex"}}),
    )
    .await;
    let (_, acme) = get(
        &server,
        "/api/v1/profiles/lookup?user_id=shared-id",
        "tok_acme",
    )
    .await;
    let (_, globex) = get(
        &server,
        "/api/v1/profiles/lookup?user_id=shared-id",
        "tok_globex",
    )
    .await;
    assert_eq!(acme["traits"]["company"], json!("acme"));
    assert_eq!(globex["traits"]["company"], json!("globex"));
    assert_ne!(acme["id"], globex["id"]);
    let acme_id = acme["id"].as_str().expect("id");
    for path in [
        format!("/api/v1/profiles/{acme_id}"),
        format!("/api/v1/profiles/{acme_id}/events"),
    ] {
        let (status, body) = get(&server, &path, "tok_globex").await;
        assert_code(
            status,
            &body,
            StatusCode::NOT_FOUND,
            "profile_not_found",
            "{path}",
        );
    }
    let (status, body) = get(&server, &format!("/api/v1/profiles/{acme_id}"), "wk_acme").await;
    assert_code(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "invalid_api_token",
        "",
    );
    let response = client()
        .get(format!("{}/api/v1/profiles/{acme_id}", server.base))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(event_count(&server, "acme").await, 1);
    assert_eq!(event_count(&server, "globex").await, 1);
}

#[tokio::test]
async fn timelines_are_newest_first_by_event_time_and_paginate() {
    let server = start(EngineOptions::default()).await;
    // Sent out of order; the server's clock says 12:00 and clients send no sentAt, so timestamps stand.
    let batch: Vec<Value> = [3, 1, 4, 2, 5]
        .iter()
        .map(|hour| json!({"type": "track", "userId": "u1", "event": format!("E{hour}"), "timestamp": format!("2024-05-01T0{hour}:00:00Z")}))
        .collect();
    post(&server, "/v1/batch", "wk_acme", json!({"batch": batch})).await;
    let (_, profile) = get(&server, "/api/v1/profiles/lookup?user_id=u1", "tok_acme").await;
    let id = profile["id"].as_str().expect("id");
    let mut names = Vec::new();
    let mut path = format!("/api/v1/profiles/{id}/events?limit=2");
    loop {
        let (status, page) = get(&server, &path, "tok_acme").await;
        assert_eq!(status, StatusCode::OK);
        names.extend(
            page["events"]
                .as_array()
                .expect("events")
                .iter()
                .map(|e| e["name"].as_str().unwrap_or("").to_string()),
        );
        match page["next_before"].as_str() {
            Some(cursor) => path = format!("/api/v1/profiles/{id}/events?limit=2&before={cursor}"),
            None => break,
        }
    }
    assert_eq!(names, ["E5", "E4", "E3", "E2", "E1"]);
    let (status, body) = get(
        &server,
        &format!("/api/v1/profiles/{id}/events?limit=0"),
        "tok_acme",
    )
    .await;
    assert_code(status, &body, StatusCode::BAD_REQUEST, "invalid_query", "");
    let (status, body) = get(
        &server,
        "/api/v1/profiles/lookup?user_id=u1&email=x",
        "tok_acme",
    )
    .await;
    assert_code(status, &body, StatusCode::BAD_REQUEST, "invalid_query", "");
}

#[tokio::test]
async fn client_clock_skew_is_corrected_with_the_server_clock() {
    let server = start(EngineOptions::default()).await;
    server.clock.set(
        Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 10)
            .single()
            .expect("time"),
    );
    // The client's clock is two hours fast: it saw the event at 14:00:00 and sent it at 14:00:05.
    let (status, _) = post(
        &server,
        "/v1/batch",
        "wk_acme",
        json!({"sentAt": "2024-05-01T14:00:05Z", "batch": [{"type": "track", "userId": "u1", "event": "Skewed", "timestamp": "2024-05-01T14:00:00Z"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let events = timeline(&server, "/api/v1/profiles/lookup?user_id=u1").await;
    let event = &events["events"][0];
    assert_eq!(event["timestamp"], json!("2024-05-01T12:00:05Z"));
    assert_eq!(
        event["message"]["originalTimestamp"],
        json!("2024-05-01T14:00:00.000Z")
    );
    assert_eq!(
        event["message"]["receivedAt"],
        json!("2024-05-01T12:00:10.000Z")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_answers_429_with_retry_after_and_loses_no_acknowledged_event() {
    let gate = cairn_engine::Gate::default();
    let server = start(EngineOptions {
        queue_capacity_events: 60,
        log_gate: Some(gate.clone()),
        ..EngineOptions::default()
    })
    .await;
    let batch = |n: usize| {
        let messages: Vec<Value> = (0..50)
            .map(|i| json!({"type": "track", "userId": format!("u{n}"), "event": "E", "messageId": format!("{n}-{i}")}))
            .collect();
        client()
            .post(format!("{}/v1/batch", server.base))
            .basic_auth("wk_acme", Some(""))
            .json(&json!({"batch": messages}))
            .send()
    };
    // The log writer is held at its breakpoint, so the first request waits in the queue.
    gate.close();
    let first = tokio::spawn(batch(0));
    let ingestor = server.engine.as_ref().expect("running").ingestor();
    while ingestor.queued_events() < 50 {
        tokio::task::yield_now().await;
    }
    let refused = batch(1).await.expect("request");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        refused
            .headers()
            .get("retry-after")
            .map(|v| v.as_bytes().to_vec()),
        Some(b"1".to_vec())
    );
    assert_eq!(
        refused.json::<Value>().await.expect("json")["code"],
        json!("overloaded")
    );
    gate.open();
    let first = first.await.expect("task").expect("request");
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(
        first.json::<Value>().await.expect("json")["accepted"],
        json!(50)
    );
    assert_eq!(
        event_count(&server, "acme").await,
        50,
        "nothing of the refused request"
    );
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_unknown_routes_are_json_errors() {
    let server = start(EngineOptions::default()).await;
    let (status, document) = get(&server, "/api/openapi.json", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(document["openapi"], json!("3.1.0"));
    let paths = document["paths"].as_object().expect("paths");
    for kind in ["identify", "track", "page", "screen", "group", "alias"] {
        assert!(paths.contains_key(&format!("/v1/{kind}")), "{kind}");
        assert!(
            paths.contains_key(&format!("/v1/{}", &kind[..1])),
            "{kind} short path"
        );
    }
    for path in [
        "/v1/batch",
        "/v1/import",
        "/v1/b",
        "/api/v1/profiles/{id}",
        "/api/v1/profiles/lookup",
        "/api/v1/profiles/{id}/events",
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/openapi.json",
        "/api/v1/journeys",
        "/api/v1/journeys/validate",
        "/api/v1/journeys/{id}",
        "/api/v1/journeys/{id}/versions/{version}",
        "/api/v1/journeys/{id}/validate",
        "/api/v1/journeys/{id}/publish",
        "/api/v1/journeys/{id}/pause",
        "/api/v1/journeys/{id}/resume",
        "/api/v1/journeys/{id}/stop",
        "/api/v1/journeys/{id}/archive",
        "/api/v1/journeys/{id}/stats",
        "/api/v1/journeys/{id}/enroll",
        "/api/v1/journeys/{id}/test",
        "/api/v1/catalog",
        "/api/v1/audiences",
        "/api/v1/audiences/{id}",
        "/api/v1/audiences/{id}/members",
        "/api/v1/profiles/{id}/journeys",
        "/api/v1/profiles/{id}/journeys/{journey}/trace",
        "/api/v1/profiles/{id}/messages",
        "/api/v1/profiles/{id}/audiences",
        "/api/v1/profiles/{id}/consent",
        "/api/v1/templates",
        "/api/v1/templates/{id}",
        "/api/v1/templates/{id}/publish",
        "/api/v1/templates/{id}/preview",
        "/api/v1/deliveries",
        "/t/o/{token}",
        "/t/c/{token}",
        "/u/{token}",
        "/hooks/feedback",
        "/hooks/sendgrid",
        "/hooks/ses",
        "/hooks/twilio/status",
        "/hooks/twilio/inbound/{workspace}",
        "/api/v1/profiles/{id}/360",
        "/api/v1/sources/{source}/records/{id}",
        "/api/v1/sources/{source}/records/{id}/profile",
        "/api/v1/identity/explain",
        "/api/v1/identity/unmerge",
        "/api/v1/identity/rules",
        "/api/v1/identity/rules/preview",
        "/api/v1/identity/rules/progress",
    ] {
        assert!(paths.contains_key(path), "{path} is documented");
    }
    // Every documented path and method is routed: it answers something other than route_not_found
    // or method_not_allowed (an empty body is bad input, an unknown id is not found: both fine).
    for (path, item) in paths {
        let concrete = path
            .replace("{id}", "prof_x")
            .replace("{journey}", "x")
            .replace("{source}", "crm")
            .replace("{version}", "1")
            .replace("{token}", "x")
            .replace("{workspace}", "acme");
        for method in item.as_object().expect("path item").keys() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes())
                .expect("an HTTP method");
            let response = client()
                .request(method.clone(), format!("{}{concrete}", server.base))
                .bearer_auth("tok_acme")
                .header("content-type", "application/json")
                .send()
                .await
                .expect("request");
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            for unrouted in ["route_not_found", "method_not_allowed"] {
                assert_ne!(body["code"], json!(unrouted), "{method} {path} -> {status}");
            }
        }
    }
    let (status, body) = get(&server, "/v2/nothing", "tok_acme").await;
    assert_code(status, &body, StatusCode::NOT_FOUND, "route_not_found", "");
    let response = client()
        .delete(format!("{}/v1/track", server.base))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        response.json::<Value>().await.expect("json")["code"],
        json!("method_not_allowed")
    );
}
