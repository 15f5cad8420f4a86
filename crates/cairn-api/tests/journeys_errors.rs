//! Bad input to the journey and audience API and workspace isolation, on a real server: every
//! validation error class through the API (validate, draft, publish), malformed documents with
//! positions, unknown journeys, audiences and profiles, wrong content types — each with its documented
//! status and code, and nothing stored by a refused request.

mod common;

use common::{assert_code, get, manual_time, post, post_json, put_yaml, send, start, Server};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const TOKEN: &str = "tok_acme";

async fn track(server: &Server, key: &str, body: Value) {
    let (status, answer) = post(server, "/v1/track", key, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

async fn identify(server: &Server, key: &str, body: Value) {
    let (status, answer) = post(server, "/v1/identify", key, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

/// Events, attributes and an audience the validation cases rely on being known.
async fn seed_acme(server: &Server) {
    for event in ["Start", "Order Completed"] {
        track(server, "wk_acme", json!({"userId": "seed", "event": event})).await;
    }
    identify(
        server,
        "wk_acme",
        json!({"userId": "seed", "traits": {"timezone": "Europe/Berlin", "tier": "gold", "renewal_date": "2026-01-01"}}),
    )
    .await;
    let (status, body) = put_yaml(
        server,
        "/api/v1/audiences/lapsed",
        TOKEN,
        "id: lapsed\nname: Lapsed\ncondition: 'count(\"Order Completed\", 90d) == 0'\n",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// (code, step, path, document): one document per validation error class the API can produce.
/// (`unknown_template` cannot: a workspace accepts any template until templates are stored.)
const CASES: &[(&str, Option<&str>, &str, &str)] = &[
    ("no_steps", None, "/steps", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: x\nsteps: []"),
    ("duplicate_step_id", Some("x"), "/steps/1/id", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: x\nsteps: [{id: x, type: exit}, {id: x, type: exit}]"),
    ("duplicate_criterion_id", None, "/goals/1/id", "id: j\nname: J\nentry: {event: {name: Start}}\ngoals: [{id: g, event: Order Completed}, {id: g, event: Order Completed}]\nstart: x\nsteps: [{id: x, type: exit}]"),
    ("unknown_step", Some("a"), "/steps/0/next", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: a\nsteps: [{id: a, type: join, next: nowhere}]"),
    ("missing_target", Some("d"), "/steps/0/default", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: d\nsteps:\n  - {id: d, type: decision_split, branches: [{condition: 'profile.tier == \"a\"', next: x}]}\n  - {id: x, type: exit}"),
    ("unreachable_step", Some("orphan"), "/steps/1", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: x\nsteps: [{id: x, type: exit}, {id: orphan, type: exit}]"),
    ("cycle_without_wait", Some("a"), "/steps/0", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: a\nsteps:\n  - {id: a, type: send, channel: email, template: t, next: b}\n  - {id: b, type: decision_split, branches: [{condition: 'profile.tier == \"a\"', next: a}], default: x}\n  - {id: x, type: exit}"),
    ("empty_split", Some("r"), "/steps/0/branches", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: r\nsteps: [{id: r, type: random_split, branches: []}]"),
    ("random_weights", Some("r"), "/steps/0/branches", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: r\nsteps:\n  - {id: r, type: random_split, branches: [{name: a, weight: 50, next: x}, {name: b, weight: 40, next: x}]}\n  - {id: x, type: exit}"),
    ("unknown_attribute", Some("w"), "/steps/0/until/attribute", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: w\nsteps:\n  - {id: w, type: wait, until: {attribute: profile.colour}, next: x}\n  - {id: x, type: exit}"),
    ("invalid_attribute", Some("w"), "/steps/0/until/attribute", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: w\nsteps:\n  - {id: w, type: wait, until: {attribute: renewal_date}, next: x}\n  - {id: x, type: exit}"),
    ("unknown_event", None, "/entry/event/name", "id: j\nname: J\nentry: {event: {name: Mystery}}\nstart: x\nsteps: [{id: x, type: exit}]"),
    ("unknown_audience", None, "/entry/audience/id", "id: j\nname: J\nentry: {audience: {id: ghosts}}\nstart: x\nsteps: [{id: x, type: exit}]"),
    ("invalid_condition", Some("d"), "/steps/0/branches/0/condition", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: d\nsteps:\n  - {id: d, type: decision_split, branches: [{condition: 'profile.tier ==', next: x}], default: x}\n  - {id: x, type: exit}"),
    ("invalid_duration", Some("w"), "/steps/0/duration", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: w\nsteps:\n  - {id: w, type: wait, duration: soonish, next: x}\n  - {id: x, type: exit}"),
    ("invalid_time_zone", None, "/defaults/time_zone", "id: j\nname: J\nentry: {event: {name: Start}}\ndefaults: {time_zone: Mars/Olympus}\nstart: x\nsteps: [{id: x, type: exit}]"),
    ("invalid_cron", None, "/entry/schedule/cron", "id: j\nname: J\nentry: {schedule: {cron: 'every monday', time_zone: Europe/Berlin, audience: lapsed}}\nstart: x\nsteps: [{id: x, type: exit}]"),
    ("invalid_time_of_day", Some("w"), "/steps/0/until/time_of_day", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: w\nsteps:\n  - {id: w, type: wait, until: {time_of_day: '25:00'}, next: x}\n  - {id: x, type: exit}"),
    ("invalid_date_time", Some("w"), "/steps/0/until/date_time", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: w\nsteps:\n  - {id: w, type: wait, until: {date_time: 'next tuesday'}, next: x}\n  - {id: x, type: exit}"),
    ("invalid_wait", Some("w"), "/steps/0", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: w\nsteps:\n  - {id: w, type: wait, duration: 1h, until: {time_of_day: '09:00'}, next: x}\n  - {id: x, type: exit}"),
    ("invalid_engagement_split", Some("e"), "/steps/0/send_step", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: e\nsteps:\n  - {id: e, type: engagement_split, send_step: x, engagement: opened, window: 1d, on_yes: x, on_no: x}\n  - {id: x, type: exit}"),
    ("invalid_await_response", Some("a"), "/steps/0/await_response", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: a\nsteps:\n  - {id: a, type: send, channel: email, template: t, await_response: {timeout: 30s, on_success: x, on_failure: x, on_timeout: x}}\n  - {id: x, type: exit}"),
    ("empty_update", Some("u"), "/steps/0", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: u\nsteps:\n  - {id: u, type: update_profile, next: x}\n  - {id: x, type: exit}"),
    ("conflicting_update", Some("u"), "/steps/0/unset/0", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: u\nsteps:\n  - {id: u, type: update_profile, set: {tier: a}, unset: [tier], next: x}\n  - {id: x, type: exit}"),
    ("empty_criterion", None, "/exits/0", "id: j\nname: J\nentry: {event: {name: Start}}\nexits: [{id: e}]\nstart: x\nsteps: [{id: x, type: exit}]"),
    ("criterion_never_evaluated", None, "/goals/0/condition", "id: j\nname: J\nentry: {event: {name: Start}}\ngoals: [{id: g, event: Order Completed, condition: 'event.name == \"Start\"'}]\nstart: x\nsteps: [{id: x, type: exit}]"),
];

/// Finds the expected problem in an answer's `errors`, and checks every problem has its fields.
fn assert_problem(errors: &Value, code: &str, step: Option<&str>, path: &str, context: &str) {
    let errors = errors
        .as_array()
        .unwrap_or_else(|| panic!("{context}: no errors list"));
    for error in errors {
        assert!(
            error["code"].is_string() && error["path"].is_string() && error["message"].is_string(),
            "{context}: {error}"
        );
    }
    assert!(
        errors.iter().any(|error| error["code"] == code
            && error["path"] == path
            && error["step"].as_str() == step),
        "{context}: expected {code} at {path} (step {step:?}) in {errors:#?}"
    );
}

async fn yaml(server: &Server, method: Method, path: &str, body: &str) -> (StatusCode, Value) {
    send(
        server,
        method,
        path,
        TOKEN,
        Some("application/yaml"),
        body.to_string(),
    )
    .await
}

#[tokio::test]
async fn every_validation_error_class_is_reported_and_blocks_publishing() {
    let server = start(manual_time()).await;
    seed_acme(&server).await;
    for (code, step, path, document) in CASES {
        // Ad-hoc validation stores nothing and answers every error.
        let (status, body) =
            yaml(&server, Method::POST, "/api/v1/journeys/validate", document).await;
        assert_code(
            status,
            &body,
            StatusCode::BAD_REQUEST,
            "invalid_journey",
            code,
        );
        assert_problem(&body["errors"], code, *step, path, code);
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("the journey does not validate")),
            "{body}"
        );

        // A draft may be incomplete: it is stored with its errors listed…
        let (status, body) = yaml(&server, Method::PUT, "/api/v1/journeys/j", document).await;
        assert!(status.is_success(), "{code}: {status} {body}");
        assert_eq!(body["validation"]["valid"], false, "{code}");
        assert_problem(&body["validation"]["errors"], code, *step, path, code);
        // …and publishing it is refused with every error, creating no version.
        let (status, body) =
            post_json(&server, "/api/v1/journeys/j/publish", TOKEN, json!({})).await;
        assert_code(
            status,
            &body,
            StatusCode::BAD_REQUEST,
            "invalid_journey",
            code,
        );
        assert_problem(&body["errors"], code, *step, path, code);
        let (status, body) =
            post_json(&server, "/api/v1/journeys/j/validate", TOKEN, json!({})).await;
        assert_code(
            status,
            &body,
            StatusCode::BAD_REQUEST,
            "invalid_journey",
            code,
        );
    }
    let (_, journey) = get(&server, "/api/v1/journeys/j", TOKEN).await;
    assert_eq!(journey["status"], "draft");
    assert_eq!(journey["versions"], json!([]));

    // A valid document validates; ten thousand and one steps do not.
    let valid =
        "id: j\nname: J\nentry: {event: {name: Start}}\nstart: x\nsteps: [{id: x, type: exit}]";
    let (status, body) = yaml(&server, Method::POST, "/api/v1/journeys/validate", valid).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"journey": "j", "valid": true, "errors": []})
        )
    );
    let steps: Vec<Value> = (0..10_001)
        .map(|index| json!({"id": format!("s{index}"), "type": "exit"}))
        .collect();
    let huge = json!({"id": "huge", "name": "Huge", "entry": {"event": {"name": "Start"}}, "start": "s0", "steps": steps});
    let (status, body) = post_json(&server, "/api/v1/journeys/validate", TOKEN, huge).await;
    assert_code(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_journey",
        "too many steps",
    );
    assert!(body["errors"]
        .as_array()
        .is_some_and(|errors| errors.iter().any(|e| e["code"] == "too_many_steps")));

    // An invalid id cannot even be a draft (it names the journey in URLs).
    let (status, body) = yaml(
        &server,
        Method::POST,
        "/api/v1/journeys",
        "id: 'bad id!'\nname: J\nentry: {event: {name: Start}}\nstart: x\nsteps: [{id: x, type: exit}]",
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_journey",
        "invalid id",
    );
    assert_problem(&body["errors"], "invalid_id", None, "/id", "invalid id");
    let (_, list) = get(&server, "/api/v1/journeys?include_archived=true", TOKEN).await;
    assert_eq!(list["journeys"].as_array().map(Vec::len), Some(1), "{list}");
}

/// Everything a refused request could have changed.
async fn snapshot(server: &Server) -> Value {
    let mut state = json!({});
    for (name, path) in [
        ("journeys", "/api/v1/journeys?include_archived=true"),
        ("draft", "/api/v1/journeys/kept"),
        ("audiences", "/api/v1/audiences"),
        ("catalog", "/api/v1/catalog"),
    ] {
        let (status, body) = get(server, path, TOKEN).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        state[name] = body;
    }
    state
}

#[tokio::test]
async fn malformed_unknown_and_mistyped_requests_get_their_codes_and_store_nothing() {
    let server = start(manual_time()).await;
    seed_acme(&server).await;
    let kept = "id: kept\nname: Kept\nentry: {event: {name: Start}}\nstart: x\nsteps: [{id: x, type: exit}]";
    let (status, _) = yaml(&server, Method::PUT, "/api/v1/journeys/kept", kept).await;
    assert_eq!(status, StatusCode::CREATED);
    let seed = {
        let (_, profile) = get(&server, "/api/v1/profiles/lookup?user_id=seed", TOKEN).await;
        profile["id"].as_str().expect("seed profile").to_string()
    };
    let before = snapshot(&server).await;

    // Malformed documents: one problem with the position the parser stopped at.
    let (status, body) = send(
        &server,
        Method::POST,
        "/api/v1/journeys",
        TOKEN,
        Some("application/json"),
        "{\"id\": \"k\",\n \"name\": ",
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_journey",
        "truncated JSON",
    );
    assert_eq!(body["errors"][0]["code"], "malformed_document");
    assert_eq!(body["errors"][0]["line"], 2);
    let (status, body) = yaml(
        &server,
        Method::POST,
        "/api/v1/journeys",
        "id: k\nname: K\nentry: {event: {name: Start}}\nstart: a\nsteps:\n  - {id: a, type: teleport}\n",
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_journey",
        "unknown step type",
    );
    assert_eq!(body["errors"][0]["line"], 6, "{body}");
    assert_eq!(body["errors"][0]["path"], "/steps/0/type");
    assert!(body["message"]
        .as_str()
        .is_some_and(|m| m.contains("teleport")));
    let (status, body) = yaml(
        &server,
        Method::PUT,
        "/api/v1/journeys/kept",
        "id: kept\nname: [unclosed\n",
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_journey",
        "bad YAML",
    );
    assert!(
        body["errors"][0]["line"]
            .as_u64()
            .is_some_and(|line| line >= 2),
        "{body}"
    );
    let (status, body) = send(
        &server,
        Method::PUT,
        "/api/v1/journeys/kept",
        TOKEN,
        Some("application/json"),
        kept,
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_journey",
        "YAML sent as JSON",
    );

    // Wrong content types, ids that do not match, reserved ids, oversized documents.
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "text/csv",
    ] {
        let (status, body) = send(
            &server,
            Method::PUT,
            "/api/v1/journeys/kept",
            TOKEN,
            Some(content_type),
            kept,
        )
        .await;
        assert_code(
            status,
            &body,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            content_type,
        );
    }
    let (status, body) = send(
        &server,
        Method::POST,
        "/api/v1/journeys/kept/stop",
        TOKEN,
        Some("application/yaml"),
        "reason: over",
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "YAML command",
    );
    let (status, body) = yaml(&server, Method::PUT, "/api/v1/journeys/other", kept).await;
    assert_code(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_journey",
        "id mismatch",
    );
    assert_eq!(body["errors"][0]["code"], "id_mismatch");
    let reserved = kept.replace("id: kept", "id: validate");
    let (status, body) = yaml(&server, Method::POST, "/api/v1/journeys", &reserved).await;
    assert_code(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_journey",
        "reserved id",
    );
    let oversized = format!("{kept}\ndescription: '{}'\n", "x".repeat(1024 * 1024 + 1));
    let (status, body) = yaml(&server, Method::PUT, "/api/v1/journeys/kept", &oversized).await;
    assert_code(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "document_too_large",
        "oversized",
    );

    // Unknown journeys and versions.
    let not_found = (StatusCode::NOT_FOUND, "journey_not_found");
    for (method, path, body) in [
        (Method::GET, "/api/v1/journeys/nope", json!(null)),
        (Method::GET, "/api/v1/journeys/nope/stats", json!(null)),
        (Method::GET, "/api/v1/journeys/kept/versions/1", json!(null)),
        (
            Method::GET,
            "/api/v1/journeys/kept/versions/first",
            json!(null),
        ),
        (Method::POST, "/api/v1/journeys/nope/validate", json!({})),
        (Method::POST, "/api/v1/journeys/nope/publish", json!({})),
        (Method::POST, "/api/v1/journeys/nope/pause", json!({})),
        (Method::POST, "/api/v1/journeys/nope/resume", json!({})),
        (
            Method::POST,
            "/api/v1/journeys/nope/stop",
            json!({"reason": "x"}),
        ),
        (Method::POST, "/api/v1/journeys/nope/archive", json!({})),
        (
            Method::POST,
            "/api/v1/journeys/nope/enroll",
            json!({"user_id": "seed"}),
        ),
        (Method::POST, "/api/v1/journeys/nope/test", json!({})),
        (
            Method::POST,
            "/api/v1/journeys/kept/test",
            json!({"version": 1}),
        ),
    ] {
        let text = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let (status, answer) = send(
            &server,
            method.clone(),
            path,
            TOKEN,
            Some("application/json"),
            text,
        )
        .await;
        assert_code(
            status,
            &answer,
            not_found.0,
            not_found.1,
            &format!("{method} {path}"),
        );
    }

    // Unknown profiles and audiences; malformed command bodies and queries.
    let profile_not_found = (StatusCode::NOT_FOUND, "profile_not_found");
    for path in [
        "/api/v1/profiles/prof_nope/journeys",
        "/api/v1/profiles/prof_nope/journeys/kept/trace",
        "/api/v1/profiles/prof_nope/messages",
        "/api/v1/profiles/prof_nope/audiences",
    ] {
        let (status, body) = get(&server, path, TOKEN).await;
        assert_code(
            status,
            &body,
            profile_not_found.0,
            profile_not_found.1,
            path,
        );
    }
    let (status, body) = get(
        &server,
        &format!("/api/v1/profiles/{seed}/journeys/nope/trace"),
        TOKEN,
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "journey_not_found",
        "trace of an unknown journey",
    );
    let (status, body) = post_json(
        &server,
        "/api/v1/journeys/kept/enroll",
        TOKEN,
        json!({"email": "nobody@example.com"}),
    )
    .await;
    assert_code(
        status,
        &body,
        profile_not_found.0,
        profile_not_found.1,
        "enroll nobody",
    );
    for (body, code) in [
        (
            json!({"user_id": "seed", "email": "seed@example.com"}),
            "invalid_body",
        ),
        (json!({}), "invalid_body"),
        (json!({"user_id": "seed", "colour": "red"}), "invalid_body"),
    ] {
        let (status, answer) =
            post_json(&server, "/api/v1/journeys/kept/enroll", TOKEN, body.clone()).await;
        assert_code(
            status,
            &answer,
            StatusCode::BAD_REQUEST,
            code,
            &body.to_string(),
        );
    }
    let (status, body) = send(
        &server,
        Method::POST,
        "/api/v1/journeys/kept/enroll",
        TOKEN,
        Some("application/json"),
        "{\"user_id\": ",
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_json",
        "truncated enroll",
    );
    let (status, body) = post_json(
        &server,
        "/api/v1/journeys/kept/enroll",
        TOKEN,
        json!({"user_id": "seed"}),
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::CONFLICT,
        "enrollment_refused",
        "a draft takes no entries",
    );
    for path in [
        "/api/v1/journeys?archived=yes",
        "/api/v1/audiences/lapsed/members?limit=5000",
        &format!("/api/v1/profiles/{seed}/messages?limit=0"),
    ] {
        let (status, body) = get(&server, path, TOKEN).await;
        assert_code(
            status,
            &body,
            StatusCode::BAD_REQUEST,
            "invalid_query",
            path,
        );
    }
    for path in ["/api/v1/audiences/nope", "/api/v1/audiences/nope/members"] {
        let (status, body) = get(&server, path, TOKEN).await;
        assert_code(
            status,
            &body,
            StatusCode::NOT_FOUND,
            "audience_not_found",
            path,
        );
    }

    // Invalid audiences: a condition over event data, a malformed document, a mismatched id.
    let (status, body) = put_yaml(
        &server,
        "/api/v1/audiences/buyers",
        TOKEN,
        "id: buyers\nname: Buyers\ncondition: 'event.name == \"Order Completed\"'\n",
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_audience",
        "event data",
    );
    assert_eq!(body["errors"][0]["code"], "invalid_condition");
    assert_eq!(body["errors"][0]["path"], "/condition");
    let (status, body) = put_yaml(
        &server,
        "/api/v1/audiences/buyers",
        TOKEN,
        "id: buyers\nname: Buyers\n",
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_audience",
        "no condition",
    );
    assert_eq!(body["errors"][0]["code"], "malformed_document");
    let (status, body) = put_yaml(
        &server,
        "/api/v1/audiences/buyers",
        TOKEN,
        "id: lapsed\nname: Lapsed\ncondition: 'profile.tier == \"gold\"'\n",
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_audience",
        "audience id mismatch",
    );

    // Credentials.
    let (status, body) = send(&server, Method::GET, "/api/v1/journeys", "", None, "").await;
    assert_code(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "missing_api_token",
        "empty token",
    );
    let (status, body) = send(
        &server,
        Method::GET,
        "/api/v1/journeys",
        "tok_nope",
        None,
        "",
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "invalid_api_token",
        "unknown token",
    );
    let (status, body) = send(
        &server,
        Method::POST,
        "/api/v1/journeys",
        "wk_acme",
        Some("application/yaml"),
        kept,
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "invalid_api_token",
        "write key as token",
    );

    assert_eq!(snapshot(&server).await, before, "nothing was stored");
}

#[tokio::test]
async fn workspaces_cannot_see_or_change_each_others_journeys_audiences_or_traces() {
    let server = start(manual_time()).await;
    seed_acme(&server).await;
    let journey = "id: iso\nname: Iso\nentry: {event: {name: Start}}\nstart: hi\nsteps:\n  - {id: hi, type: send, channel: email, template: hi, next: x}\n  - {id: x, type: exit}\n";
    let (status, _) = put_yaml(&server, "/api/v1/journeys/iso", TOKEN, journey).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = post_json(&server, "/api/v1/journeys/iso/publish", TOKEN, json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
    track(
        &server,
        "wk_acme",
        json!({"userId": "ann", "event": "Start"}),
    )
    .await;
    let (_, ann) = get(&server, "/api/v1/profiles/lookup?user_id=ann", TOKEN).await;
    let ann = ann["id"].as_str().expect("ann").to_string();
    let (_, acme_before) = get(&server, "/api/v1/journeys/iso", TOKEN).await;

    let other = "tok_globex";
    let (_, list) = get(&server, "/api/v1/journeys", other).await;
    assert_eq!(list["journeys"], json!([]));
    let (_, list) = get(&server, "/api/v1/audiences", other).await;
    assert_eq!(list["audiences"], json!([]));
    let (_, catalog) = get(&server, "/api/v1/catalog", other).await;
    assert_eq!(
        catalog,
        json!({"events": [], "profile_attributes": [], "audiences": []})
    );
    for (method, path, body) in [
        (Method::GET, "/api/v1/journeys/iso", ""),
        (Method::GET, "/api/v1/journeys/iso/stats", ""),
        (Method::GET, "/api/v1/journeys/iso/versions/1", ""),
        (Method::POST, "/api/v1/journeys/iso/pause", "{}"),
        (
            Method::POST,
            "/api/v1/journeys/iso/stop",
            "{\"reason\": \"sabotage\"}",
        ),
        (Method::POST, "/api/v1/journeys/iso/archive", "{}"),
        (
            Method::POST,
            "/api/v1/journeys/iso/enroll",
            "{\"user_id\": \"ann\"}",
        ),
        (Method::POST, "/api/v1/journeys/iso/test", "{}"),
    ] {
        let (status, answer) = send(
            &server,
            method.clone(),
            path,
            other,
            Some("application/json"),
            body,
        )
        .await;
        assert_code(
            status,
            &answer,
            StatusCode::NOT_FOUND,
            "journey_not_found",
            &format!("{method} {path}"),
        );
    }
    for path in [
        "/api/v1/audiences/lapsed",
        "/api/v1/audiences/lapsed/members",
    ] {
        let (status, body) = get(&server, path, other).await;
        assert_code(
            status,
            &body,
            StatusCode::NOT_FOUND,
            "audience_not_found",
            path,
        );
    }
    for path in [
        format!("/api/v1/profiles/{ann}/journeys/iso/trace"),
        format!("/api/v1/profiles/{ann}/messages"),
        format!("/api/v1/profiles/{ann}/journeys"),
        format!("/api/v1/profiles/{ann}/audiences"),
    ] {
        let (status, body) = get(&server, &path, other).await;
        assert_code(
            status,
            &body,
            StatusCode::NOT_FOUND,
            "profile_not_found",
            &path,
        );
    }
    // The other workspace's catalog grows from its own data, from its very first message.
    identify(
        &server,
        "wk_globex",
        json!({"userId": "gus", "traits": {"tier": "silver"}}),
    )
    .await;
    let (_, catalog) = get(&server, "/api/v1/catalog", other).await;
    assert_eq!(catalog["profile_attributes"], json!(["tier"]));
    let (_, catalog) = get(&server, "/api/v1/catalog", TOKEN).await;
    assert_eq!(catalog["events"], json!(["Order Completed", "Start"]));
    // The same id in the other workspace is another journey, checked against that workspace's
    // catalog (which has not seen `Start`).
    let (status, body) = put_yaml(&server, "/api/v1/journeys/iso", other, journey).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["validation"]["errors"][0]["code"], "unknown_event");
    let (status, body) = post_json(&server, "/api/v1/journeys/iso/publish", other, json!({})).await;
    assert_code(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_journey",
        "globex catalog",
    );
    let (_, acme_after) = get(&server, "/api/v1/journeys/iso", TOKEN).await;
    assert_eq!(acme_after, acme_before);
    let (_, messages) = get(&server, &format!("/api/v1/profiles/{ann}/messages"), TOKEN).await;
    assert_eq!(messages["messages"].as_array().map(Vec::len), Some(1));
}
