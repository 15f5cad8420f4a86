//! Unit tests of request parsing and message validation.

use super::*;
use chrono::TimeZone;
use proptest::prelude::*;
use serde_json::json;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0)
        .single()
        .expect("valid time")
}

fn one(body: Value, kind: MessageKind) -> Result<NormalizedMessage, Rejection> {
    let text = body.to_string();
    let parsed = parse_request(&text, Endpoint::Single(kind))?;
    let message = parsed.messages.into_iter().next().expect("one message")?;
    normalize(message, &parsed.envelope, now())
}

fn body(message: &NormalizedMessage) -> Map<String, Value> {
    view_of(message).expect("the stored text reads back")
}

fn traits(message: &NormalizedMessage) -> Map<String, Value> {
    serde_json::from_str(message.traits.as_deref().expect("traits")).expect("a JSON object")
}

fn code_of(result: Result<NormalizedMessage, Rejection>) -> ErrorCode {
    result.expect_err("should be rejected").code
}

#[test]
fn a_track_is_normalized_with_ids_and_corrected_timestamp() {
    let message = one(
        json!({"userId": "u1", "anonymousId": "a1", "event": "Order Completed", "messageId": "m1",
               "properties": {"total": 10}, "timestamp": "2024-05-01T11:00:00Z", "sentAt": "2024-05-01T11:00:30Z",
               "context": {"traits": {"email": " Ann@Example.COM "}}, "writeKey": "secret"}),
        MessageKind::Track,
    )
    .expect("valid");
    assert_eq!(message.kind, MessageKind::Track);
    assert_eq!(message.message_id, "m1");
    assert_eq!(message.name.as_deref(), Some("Order Completed"));
    assert_eq!(
        message.identifiers,
        vec![
            Identifier::new(IdentifierKind::UserId, "u1"),
            Identifier::email("ann@example.com"),
            Identifier::new(IdentifierKind::AnonymousId, "a1"),
        ]
    );
    // Sent 30 s after it happened; received at 12:00:00 → happened at 11:59:30 by our clock.
    assert_eq!(message.timestamp, now() - chrono::Duration::seconds(30));
    assert_eq!(
        body(&message)["timestamp"],
        json!("2024-05-01T11:59:30.000Z")
    );
    assert_eq!(
        body(&message)["originalTimestamp"],
        json!("2024-05-01T11:00:00.000Z")
    );
    assert_eq!(
        body(&message)["receivedAt"],
        json!("2024-05-01T12:00:00.000Z")
    );
    assert_eq!(body(&message)["type"], json!("track"));
    assert!(!body(&message).contains_key("writeKey"));
    assert!(
        !message.raw.contains("secret"),
        "the write key is not stored"
    );
}

#[test]
fn identify_traits_set_profile_traits_and_numeric_user_ids_become_strings() {
    let message = one(
        json!({"userId": 42, "traits": {"plan": "pro", "email": "x@y.z"}}),
        MessageKind::Identify,
    )
    .expect("valid");
    assert_eq!(
        message.identifiers[0],
        Identifier::new(IdentifierKind::UserId, "42")
    );
    assert_eq!(traits(&message)["plan"], json!("pro"));
    assert_eq!(body(&message)["userId"], json!("42"));
    assert!(
        message.message_id.starts_with("cairn-"),
        "a missing messageId is generated"
    );
}

#[test]
fn group_traits_are_not_profile_traits() {
    let message = one(
        json!({"userId": "u", "groupId": "g", "traits": {"name": "ACME"}}),
        MessageKind::Group,
    )
    .expect("valid");
    assert!(message.traits.is_none());
}

#[test]
fn generated_message_ids_are_stable_for_retries() {
    let body = json!({"userId": "u", "event": "E", "timestamp": "2024-05-01T10:00:00Z"});
    let first = one(body.clone(), MessageKind::Track).expect("valid");
    let retry = one(body, MessageKind::Track).expect("valid");
    assert_eq!(first.message_id, retry.message_id);
}

#[test]
fn each_missing_or_wrong_field_has_its_code() {
    assert_eq!(
        code_of(one(json!({"event": "E"}), MessageKind::Track)),
        ErrorCode::MissingIdentity
    );
    assert_eq!(
        code_of(one(
            json!({"userId": "", "anonymousId": " "}),
            MessageKind::Page
        )),
        ErrorCode::MissingIdentity
    );
    assert_eq!(
        code_of(one(json!({"userId": "u"}), MessageKind::Track)),
        ErrorCode::MissingEvent
    );
    assert_eq!(
        code_of(one(json!({"userId": "u", "event": ""}), MessageKind::Track)),
        ErrorCode::MissingEvent
    );
    assert_eq!(
        code_of(one(json!({"userId": "u", "event": 3}), MessageKind::Track)),
        ErrorCode::InvalidField
    );
    assert_eq!(
        code_of(one(json!({"userId": "u"}), MessageKind::Alias)),
        ErrorCode::MissingPreviousId
    );
    assert_eq!(
        code_of(one(json!({"userId": "u"}), MessageKind::Group)),
        ErrorCode::MissingGroupId
    );
    assert_eq!(
        code_of(one(json!({"userId": ["u"]}), MessageKind::Page)),
        ErrorCode::InvalidField
    );
    assert_eq!(
        code_of(one(
            json!({"userId": "u", "properties": "x"}),
            MessageKind::Page
        )),
        ErrorCode::InvalidField
    );
    assert_eq!(
        code_of(one(
            json!({"userId": "u", "timestamp": "yesterday"}),
            MessageKind::Page
        )),
        ErrorCode::InvalidTimestamp
    );
    assert_eq!(
        code_of(one(
            json!({"userId": "u", "timestamp": 17}),
            MessageKind::Page
        )),
        ErrorCode::InvalidTimestamp
    );
}

#[test]
fn request_level_errors() {
    let parse = |body: &str, endpoint| parse_request(body, endpoint).expect_err("rejected").code;
    assert_eq!(parse("{", Endpoint::Batch), ErrorCode::InvalidJson);
    assert_eq!(parse("[1]", Endpoint::Batch), ErrorCode::InvalidBody);
    assert_eq!(
        parse("{\"batch\": 3}", Endpoint::Batch),
        ErrorCode::InvalidBody
    );
    assert_eq!(parse("{}", Endpoint::Batch), ErrorCode::InvalidBody);
    assert_eq!(
        parse("{\"batch\": []}", Endpoint::Batch),
        ErrorCode::EmptyBatch
    );
    assert_eq!(
        parse("\"x\"", Endpoint::Single(MessageKind::Track)),
        ErrorCode::InvalidBody
    );
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    assert_eq!(
        parse(
            &format!("{{\"userId\": {deep}}}"),
            Endpoint::Single(MessageKind::Track)
        ),
        ErrorCode::InvalidJson
    );
    // Inside a batch, a too-deep item is rejected on its own.
    let text = format!("{{\"batch\": [{deep}]}}");
    let batch = parse_request(&text, Endpoint::Batch).expect("envelope parses");
    assert_eq!(
        batch.messages[0].as_ref().expect_err("too deep").code,
        ErrorCode::InvalidJson
    );
    let big = format!(
        "{{\"userId\": \"u\", \"event\": \"{}\"}}",
        "x".repeat(MAX_MESSAGE_BYTES)
    );
    assert_eq!(
        parse(&big, Endpoint::Single(MessageKind::Track)),
        ErrorCode::MessageTooLarge
    );
}

#[test]
fn a_batch_keeps_valid_messages_and_rejects_invalid_ones_individually() {
    let big = "x".repeat(MAX_MESSAGE_BYTES);
    let request = json!({
        "writeKey": "wk", "sentAt": "2024-05-01T12:00:00Z", "context": {"library": {"name": "lib"}},
        "batch": [
            {"type": "track", "userId": "u", "event": "A", "timestamp": "2024-05-01T11:00:00Z"},
            {"type": "bogus", "userId": "u"},
            {"type": "track", "userId": "u", "event": big},
            {"type": "identify", "anonymousId": "a", "context": {"ip": "1.2.3.4"}},
        ]
    });
    let text = request.to_string();
    let parsed = parse_request(&text, Endpoint::Batch).expect("parses");
    assert_eq!(parsed.write_key.as_deref(), Some("wk"));
    let results: Vec<_> = parsed
        .messages
        .into_iter()
        .map(|message| message.and_then(|message| normalize(message, &parsed.envelope, now())))
        .collect();
    assert!(results[0].is_ok());
    assert_eq!(
        results[1].as_ref().expect_err("bad type").code,
        ErrorCode::InvalidType
    );
    assert_eq!(
        results[2].as_ref().expect_err("too big").code,
        ErrorCode::MessageTooLarge
    );
    let identify = results[3].as_ref().expect("valid");
    // Batch-level context fills what the message lacks, without overriding its own fields.
    assert_eq!(
        body(identify)["context"],
        json!({"ip": "1.2.3.4", "library": {"name": "lib"}})
    );
    // sentAt from the envelope: event at 11:00, sent at 12:00, received at 12:00 → 11:00.
    assert_eq!(
        body(results[0].as_ref().expect("valid"))["timestamp"],
        json!("2024-05-01T11:00:00.000Z")
    );
}

proptest! {
    /// The validator never panics, whatever JSON it is given.
    #[test]
    fn never_panics_on_arbitrary_json(text in "\\PC{0,200}") {
        for endpoint in [Endpoint::Batch, Endpoint::Single(MessageKind::Track)] {
            if let Ok(parsed) = parse_request(&text, endpoint) {
                for message in parsed.messages.into_iter().flatten() {
                    let _ = normalize(message, &parsed.envelope, now());
                }
            }
        }
    }

    /// Arbitrary field values in an otherwise valid track message never panic and valid ids survive.
    #[test]
    fn never_panics_on_arbitrary_fields(user in "[a-z0-9]{1,12}", ts in "\\PC{0,30}", event in "\\PC{0,20}") {
        let body = json!({"userId": user, "event": event, "timestamp": ts});
        if let Ok(message) = one(body, MessageKind::Track) {
            prop_assert_eq!(&message.identifiers[0].value, &user);
        }
    }
}

#[test]
fn the_stored_text_is_the_clients_and_the_view_normalizes_it() {
    let raw = r#"{"type":"track","userId":7,"event":"E","properties":{"a":[1,{"b":null}]},"custom":"kept"}"#;
    let message = normalize(
        Message {
            raw,
            endpoint_kind: None,
        },
        &Envelope::default(),
        now(),
    )
    .expect("valid");
    assert_eq!(message.raw, raw, "no rewrite on the hot path");
    let view = body(&message);
    assert_eq!(view["userId"], json!("7"));
    assert_eq!(view["custom"], json!("kept"));
    assert_eq!(view["properties"], json!({"a": [1, {"b": null}]}));
    assert_eq!(view["messageId"], json!(message.message_id));
    assert_eq!(view["receivedAt"], json!("2024-05-01T12:00:00.000Z"));
}

#[test]
fn identify_traits_win_over_context_traits_and_both_count() {
    let message = one(
        json!({"userId": "u", "traits": {"plan": "pro"}, "context": {"traits": {"plan": "free", "email": "A@B.C"}}}),
        MessageKind::Identify,
    )
    .expect("valid");
    assert_eq!(traits(&message)["plan"], json!("pro"));
    assert_eq!(message.identifiers[1], Identifier::email("a@b.c"));
}

#[test]
fn deep_nesting_inside_a_valid_message_is_refused() {
    let deep = format!("{}{}", "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING));
    let text =
        format!("{{\"userId\": \"u\", \"event\": \"E\", \"properties\": {{\"deep\": {deep}}}}}");
    let code = parse_request(&text, Endpoint::Single(MessageKind::Track))
        .expect_err("too deep")
        .code;
    assert_eq!(code, ErrorCode::InvalidJson);
    assert!(
        check_nesting(&format!("{{\"a\":\"{deep}\"}}")).is_ok(),
        "brackets in strings do not count"
    );
    assert!(
        check_nesting("{\"a\":\"\\\"[[[\"}").is_ok(),
        "escaped quotes stay inside the string"
    );
    let shallow = format!(
        "{}{}",
        "[".repeat(MAX_NESTING - 1),
        "]".repeat(MAX_NESTING - 1)
    );
    assert!(check_nesting(&format!("{{\"a\":{shallow}}}")).is_ok());
}
