//! The HTTP providers against a local stand-in that speaks Twilio's, FCM v1's and a webhook
//! receiver's wire formats, checks every request against them (the test then compares the exact
//! bytes) and injects 429s (with `Retry-After`), 500s and timeouts. Asserts the error classification
//! and the retry schedule the policy produces, with injected time.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cairn_channels::clock::FixedWallClock;
use cairn_channels::fcm::{FcmAuth, FcmChannel, FcmConfig};
use cairn_channels::twilio::{TwilioChannel, TwilioConfig};
use cairn_channels::webhook::{WebhookChannel, WebhookConfig};
use cairn_channels::{
    ChannelError, ChannelProvider, OutboundMessage, ProviderConfig, PushMessage, ResponseMapping,
    SmsMessage, WebhookRequest,
};
use cairn_delivery::retry::seed_for;
use cairn_delivery::webhook_signature::verify_webhook;
use cairn_delivery::{GiveUpReason, InDoubtPolicy, RetryDecision, RetryPolicy, SigningKey};
use serde_json::{json, Value};
use support::{fixture, Standin};

const SID: &str = "AC00000000000000000000000000000000";
const NOW_MS: i64 = 1_767_323_045_000;
const WEBHOOK_SECRET: &str = "webhook-secret-0123456789";

fn standin() -> Standin {
    support::init_crypto();
    Standin::start("http_standin.py", &[])
}

async fn recorded(standin: &Standin) -> Vec<Value> {
    let answer = reqwest::get(format!("{}/_requests", standin.base_url()))
        .await
        .unwrap();
    answer.json::<Vec<Value>>().await.unwrap()
}

async fn inject(standin: &Standin, faults: Value) {
    let client = reqwest::Client::new();
    let answer = client
        .post(format!("{}/_faults", standin.base_url()))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success());
}

fn clock() -> Arc<FixedWallClock> {
    Arc::new(FixedWallClock(NOW_MS))
}

fn twilio(standin: &Standin, timeout_ms: u64) -> TwilioChannel {
    TwilioChannel::new(
        TwilioConfig {
            base_url: standin.base_url(),
            account_sid: SID.into(),
            auth_token: "twilio-test-token".into(),
            from: Some("+15005550006".into()),
            messaging_service_sid: None,
            status_callback_url: Some(
                "https://cairn.example.com/hooks/twilio/status?cairn_message_id={message_id}"
                    .into(),
            ),
            timeout_ms,
        },
        clock(),
    )
    .unwrap()
}

fn sms(id: &str, to: &str) -> OutboundMessage {
    OutboundMessage::Sms(SmsMessage {
        message_id: id.into(),
        to: to.into(),
        body: "Hi Ann & co: 50% off! ✓".into(),
    })
}

#[tokio::test]
async fn twilio_requests_are_byte_exact_and_idempotent() {
    let standin = standin();
    let channel = twilio(&standin, 5_000);
    assert!(channel.capabilities().honors_idempotency_key);
    let receipt = channel
        .send(&sms("msg_sms_1", "+14155550100"), "key-sms-1")
        .await
        .unwrap();
    let again = channel
        .send(&sms("msg_sms_1", "+14155550100"), "key-sms-1")
        .await
        .unwrap();
    assert!(receipt
        .provider_message_id
        .as_deref()
        .unwrap()
        .starts_with("SM"));
    assert_eq!(
        receipt.provider_message_id, again.provider_message_id,
        "the same idempotency token gives the same message"
    );

    let requests = recorded(&standin).await;
    assert_eq!(requests.len(), 2);
    let request = &requests[0];
    assert_eq!(request["violations"], json!([]));
    assert_eq!(
        request["path"],
        format!("/2010-04-01/Accounts/{SID}/Messages.json")
    );
    assert_eq!(
        request["headers"]["authorization"],
        "Basic QUMwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDp0d2lsaW8tdGVzdC10b2tlbg=="
    );
    assert_eq!(
        request["headers"]["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(
        request["headers"]["i-twilio-idempotency-token"],
        "key-sms-1"
    );
    assert_eq!(
        request["body"],
        "To=%2B14155550100&From=%2B15005550006&Body=Hi+Ann+%26+co%3A+50%25+off%21+%E2%9C%93\
         &StatusCallback=https%3A%2F%2Fcairn.example.com%2Fhooks%2Ftwilio%2Fstatus%3Fcairn_message_id%3Dmsg_sms_1"
    );
}

#[tokio::test]
async fn twilio_invalid_numbers_are_permanent_failures() {
    let standin = standin();
    let channel = twilio(&standin, 5_000);
    let error = channel
        .send(&sms("msg_2", "4155550100"), "k2")
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            ChannelError::Permanent {
                invalid_recipient: true,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        recorded(&standin).await.is_empty(),
        "a number that is not E.164 is never sent"
    );
    let error = channel
        .send(&sms("msg_3", "+15005550001"), "k3")
        .await
        .unwrap_err();
    match error {
        ChannelError::Permanent {
            code,
            reason,
            invalid_recipient,
        } => {
            assert_eq!(code, "21211");
            assert!(reason.contains("not a valid phone number"));
            assert!(invalid_recipient);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn twilio_429_then_500_then_success_follows_the_retry_schedule() {
    let standin = standin();
    let channel = twilio(&standin, 5_000);
    inject(
        &standin,
        json!([
            {"path_prefix": "/2010-04-01", "status": 429, "retry_after": "7", "body": {"code": 20429, "message": "Too Many Requests", "status": 429}},
            {"path_prefix": "/2010-04-01", "status": 500, "body": {"code": 20500, "message": "Internal Server Error", "status": 500}}
        ]),
    )
    .await;
    let policy = RetryPolicy {
        max_attempts: 5,
        initial_backoff_ms: 1_000,
        max_backoff_ms: 60_000,
        in_doubt: InDoubtPolicy::Drop,
    };
    let seed = seed_for("msg_retry");
    let mut now = NOW_MS;
    let mut schedule = Vec::new();
    let mut attempts = 0;
    let receipt = loop {
        attempts += 1;
        match channel
            .send(&sms("msg_retry", "+14155550100"), "key-retry")
            .await
        {
            Ok(receipt) => break receipt,
            Err(error) => match policy.next(attempts, error.failure_class(), seed, now) {
                RetryDecision::RetryAt { at_ms } => {
                    schedule.push((error.clone(), at_ms - now));
                    now = at_ms; // injected time: no sleeping
                }
                RetryDecision::GiveUp { reason } => panic!("gave up: {reason:?} after {error:?}"),
            },
        }
    };
    assert_eq!(attempts, 3);
    assert!(
        matches!(&schedule[0].0, ChannelError::Transient { retry_after: Some(wait), .. } if *wait == Duration::from_secs(7))
    );
    assert_eq!(
        schedule[0].1, 7_000,
        "Retry-After (7 s) beats the first backoff (0.5–1 s)"
    );
    assert!(matches!(
        &schedule[1].0,
        ChannelError::Transient {
            retry_after: None,
            ..
        }
    ));
    assert!(
        (1_000..=2_000).contains(&schedule[1].1),
        "second backoff within [ceiling/2, ceiling] = [1 s, 2 s]: {}",
        schedule[1].1
    );
    assert_eq!(
        schedule[1].1 as u64,
        policy.backoff_ms(2, seed),
        "the jitter is the deterministic one"
    );
    let requests = recorded(&standin).await;
    assert_eq!(requests.len(), 3);
    assert!(requests
        .iter()
        .all(|r| r["headers"]["i-twilio-idempotency-token"] == "key-retry"));
    assert!(receipt.provider_message_id.is_some());

    // Three 500s against a three-attempt policy: the message is dead-lettered.
    inject(
        &standin,
        json!([{"status": 500}, {"status": 500}, {"status": 500}]),
    )
    .await;
    let short = RetryPolicy {
        max_attempts: 3,
        ..policy
    };
    let mut decision = None;
    for attempt in 1..=3 {
        let error = channel
            .send(&sms("msg_dead", "+14155550100"), "key-dead")
            .await
            .unwrap_err();
        decision = Some(short.next(attempt, error.failure_class(), seed_for("msg_dead"), NOW_MS));
    }
    assert_eq!(
        decision,
        Some(RetryDecision::GiveUp {
            reason: GiveUpReason::AttemptsExhausted
        })
    );
}

#[tokio::test]
async fn a_timeout_after_sending_is_in_doubt_and_a_resend_is_deduplicated_by_twilio() {
    let standin = standin();
    let channel = twilio(&standin, 1_000);
    inject(
        &standin,
        json!([{"path_prefix": "/2010-04-01", "delay_ms": 3000}]),
    )
    .await;
    let error = channel
        .send(&sms("msg_slow", "+14155550100"), "key-slow")
        .await
        .unwrap_err();
    assert!(matches!(error, ChannelError::InDoubt { .. }), "{error:?}");
    assert_eq!(
        RetryPolicy::default().next(1, error.failure_class(), 1, NOW_MS),
        RetryDecision::GiveUp {
            reason: GiveUpReason::InDoubtDropped
        }
    );
    let resend = RetryPolicy {
        in_doubt: InDoubtPolicy::Resend,
        ..RetryPolicy::default()
    };
    assert!(matches!(
        resend.next(1, error.failure_class(), 1, NOW_MS),
        RetryDecision::RetryAt { .. }
    ));
    // Twilio honours the idempotency token, so the resend returns the message the slow call created.
    let receipt = twilio(&standin, 5_000)
        .send(&sms("msg_slow", "+14155550100"), "key-slow")
        .await
        .unwrap();
    let standin_sid = format!("SM{:x}", md5_of("key-slow"));
    assert_eq!(
        receipt.provider_message_id.as_deref(),
        Some(standin_sid.as_str())
    );
}

/// MD5 as the stand-in derives SIDs (a tiny implementation is not worth a dependency: ask Python).
fn md5_of(text: &str) -> u128 {
    let output = std::process::Command::new("python3")
        .args([
            "-c",
            &format!("import hashlib;print(hashlib.md5({text:?}.encode()).hexdigest())"),
        ])
        .output()
        .unwrap();
    u128::from_str_radix(String::from_utf8(output.stdout).unwrap().trim(), 16).unwrap()
}

fn push(token: &str) -> OutboundMessage {
    OutboundMessage::Push(PushMessage {
        message_id: "msg_push".into(),
        device_token: token.into(),
        title: "Your cart".into(),
        body: "Still thinking about it?".into(),
        data: BTreeMap::from([("cart_id".to_owned(), "c-9".to_owned())]),
    })
}

fn fcm(standin: &Standin, auth: FcmAuth) -> FcmChannel {
    FcmChannel::new(
        &FcmConfig {
            base_url: standin.base_url(),
            project_id: "cairn-test".into(),
            auth,
            timeout_ms: 5_000,
        },
        clock(),
    )
    .unwrap()
}

#[tokio::test]
async fn fcm_v1_requests_and_error_classification() {
    let standin = standin();
    let channel = fcm(
        &standin,
        FcmAuth::Token {
            access_token: "fcm-static-token".into(),
        },
    );
    let receipt = channel.send(&push("device-1"), "ignored").await.unwrap();
    assert_eq!(
        receipt.provider_message_id.as_deref(),
        Some("projects/cairn-test/messages/1")
    );
    let requests = recorded(&standin).await;
    assert_eq!(requests[0]["violations"], json!([]));
    assert_eq!(requests[0]["path"], "/v1/projects/cairn-test/messages:send");
    assert_eq!(
        requests[0]["headers"]["authorization"],
        "Bearer fcm-static-token"
    );
    assert_eq!(requests[0]["headers"]["content-type"], "application/json");
    assert_eq!(
        requests[0]["body"],
        r#"{"message":{"data":{"cart_id":"c-9"},"notification":{"body":"Still thinking about it?","title":"Your cart"},"token":"device-1"}}"#
    );
    assert!(
        requests[0]["headers"].get("idempotency-key").is_none(),
        "FCM v1 takes no idempotency key"
    );

    for token in ["unregistered-device", "malformed-token"] {
        let error = channel.send(&push(token), "k").await.unwrap_err();
        assert!(
            matches!(
                &error,
                ChannelError::Permanent {
                    invalid_recipient: true,
                    ..
                }
            ),
            "{token}: {error:?}"
        );
    }
    inject(
        &standin,
        json!([
            {"path_prefix": "/v1", "status": 429, "retry_after": "30", "body": {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota",
                "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "QUOTA_EXCEEDED"}]}}},
            {"path_prefix": "/v1", "status": 503, "body": {"error": {"code": 503, "status": "UNAVAILABLE", "message": "try later"}}},
            {"path_prefix": "/v1", "status": 400, "body": {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "Invalid value at 'message.data'"}}}
        ]),
    )
    .await;
    let quota = channel.send(&push("device-1"), "k").await.unwrap_err();
    assert_eq!(
        quota,
        ChannelError::Transient {
            retry_after: Some(Duration::from_secs(30)),
            reason: "QUOTA_EXCEEDED: quota".into()
        }
    );
    assert!(matches!(
        channel.send(&push("device-1"), "k").await.unwrap_err(),
        ChannelError::Transient {
            retry_after: None,
            ..
        }
    ));
    let payload = channel.send(&push("device-1"), "k").await.unwrap_err();
    assert!(
        matches!(&payload, ChannelError::Permanent { invalid_recipient: false, code, .. } if code == "INVALID_ARGUMENT"),
        "a payload error keeps the token: {payload:?}"
    );
}

#[tokio::test]
async fn fcm_service_account_exchanges_a_signed_jwt_and_caches_the_token() {
    let standin = standin();
    let auth = FcmAuth::ServiceAccount {
        client_email: "cairn@cairn-test.iam.gserviceaccount.com".into(),
        private_key: fixture("test-rsa-key.pem"),
        token_uri: format!("{}/token", standin.base_url()),
    };
    let channel = fcm(&standin, auth);
    channel.send(&push("device-1"), "k").await.unwrap();
    channel.send(&push("device-2"), "k").await.unwrap();
    let requests = recorded(&standin).await;
    let paths: Vec<&str> = requests
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/token",
            "/v1/projects/cairn-test/messages:send",
            "/v1/projects/cairn-test/messages:send"
        ]
    );
    assert!(
        requests.iter().all(|r| r["violations"] == json!([])),
        "{requests:?}"
    );
    assert_eq!(
        requests[1]["headers"]["authorization"],
        "Bearer ya29.standin-1"
    );
    assert_eq!(
        requests[2]["headers"]["authorization"], "Bearer ya29.standin-1",
        "the token is cached"
    );

    let form: BTreeMap<String, String> =
        url::form_urlencoded::parse(requests[0]["body"].as_str().unwrap().as_bytes())
            .into_owned()
            .collect();
    let key =
        jsonwebtoken::DecodingKey::from_rsa_pem(fixture("test-rsa-public.pem").as_bytes()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[format!("{}/token", standin.base_url())]);
    validation.validate_exp = false;
    let claims = jsonwebtoken::decode::<Value>(&form["assertion"], &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["iss"], "cairn@cairn-test.iam.gserviceaccount.com");
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/firebase.messaging"
    );
    assert_eq!(claims["iat"], NOW_MS / 1000);
    assert_eq!(claims["exp"], NOW_MS / 1000 + 3600);

    inject(&standin, json!([{"path_prefix": "/v1", "status": 401, "body": {"error": {"code": 401, "status": "UNAUTHENTICATED", "message": "expired"}}}])).await;
    let error = channel.send(&push("device-3"), "k").await.unwrap_err();
    assert!(matches!(error, ChannelError::Transient { .. }), "{error:?}");
    channel.send(&push("device-3"), "k").await.unwrap();
    let requests = recorded(&standin).await;
    assert_eq!(
        requests.last().unwrap()["headers"]["authorization"],
        "Bearer ya29.standin-2",
        "a rejected token is replaced"
    );
}

fn webhook(timeout_ms: u64) -> WebhookChannel {
    WebhookChannel::new(
        &WebhookConfig {
            signing_secret: WEBHOOK_SECRET.into(),
            timeout_ms,
            max_response_bytes: 65_536,
        },
        clock(),
    )
    .unwrap()
}

fn call(standin: &Standin, hook: &str) -> OutboundMessage {
    OutboundMessage::Webhook(WebhookRequest {
        message_id: "msg_hook".into(),
        url: format!("{}/hooks/{hook}", standin.base_url()),
        body: json!({"profile_id": "prof_ann", "email": "ann@example.com", "note": "caf\u{e9} \"quoted\""}),
        response_mapping: vec![
            ResponseMapping {
                pointer: "/customer/tier".into(),
                attribute: "crm_tier".into(),
            },
            ResponseMapping {
                pointer: "/customer/score".into(),
                attribute: "crm_score".into(),
            },
            ResponseMapping {
                pointer: "/customer/missing".into(),
                attribute: "crm_missing".into(),
            },
        ],
    })
}

#[tokio::test]
async fn webhooks_are_signed_and_their_answers_mapped_onto_attributes() {
    let standin = standin();
    let channel = webhook(5_000);
    let receipt = channel
        .send(&call(&standin, "crm"), "key-hook-1")
        .await
        .unwrap();
    assert_eq!(
        receipt.attributes,
        BTreeMap::from([
            ("crm_score".to_owned(), json!(42)),
            ("crm_tier".to_owned(), json!("gold"))
        ])
    );
    assert_eq!(
        receipt.mapping_errors,
        ["`/customer/missing` is not in the response"]
    );
    let requests = recorded(&standin).await;
    let request = &requests[0];
    assert_eq!(
        request["violations"],
        json!([]),
        "the stand-in verified the HMAC"
    );
    let body = request["body"].as_str().unwrap();
    assert_eq!(
        body,
        r#"{"email":"ann@example.com","note":"café \"quoted\"","profile_id":"prof_ann"}"#
    );
    assert_eq!(request["headers"]["idempotency-key"], "key-hook-1");
    let signature = request["headers"]["cairn-signature"].as_str().unwrap();
    assert!(signature.starts_with(&format!("t={},v1=", NOW_MS / 1000)));
    let key = SigningKey::new(WEBHOOK_SECRET.as_bytes().to_vec(), "k").unwrap();
    verify_webhook(&key, signature, body.as_bytes(), NOW_MS / 1000 + 10, 300).unwrap();

    let rejected = channel
        .send(&call(&standin, "reject"), "k")
        .await
        .unwrap_err();
    assert!(
        matches!(&rejected, ChannelError::Permanent { code, .. } if code == "http_422"),
        "{rejected:?}"
    );
    inject(
        &standin,
        json!([{"path_prefix": "/hooks", "status": 429, "retry_after": "2"}]),
    )
    .await;
    let limited = channel.send(&call(&standin, "crm"), "k").await.unwrap_err();
    assert!(
        matches!(limited, ChannelError::Transient { retry_after: Some(wait), .. } if wait == Duration::from_secs(2))
    );
    inject(
        &standin,
        json!([{"path_prefix": "/hooks", "delay_ms": 3000}]),
    )
    .await;
    let slow = webhook(1_000)
        .send(&call(&standin, "crm"), "k")
        .await
        .unwrap_err();
    assert!(matches!(slow, ChannelError::InDoubt { .. }), "{slow:?}");
    let dead = webhook(1_000)
        .send(
            &OutboundMessage::Webhook(WebhookRequest {
                url: "http://127.0.0.1:9/hooks/x".into(),
                ..match call(&standin, "x") {
                    OutboundMessage::Webhook(w) => w,
                    _ => unreachable!(),
                }
            }),
            "k",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(dead, ChannelError::Transient { .. }),
        "nothing listens: nothing was sent: {dead:?}"
    );
}

#[tokio::test]
async fn bad_provider_settings_are_clear_errors_at_startup() {
    let valid_twilio = json!({"provider": "twilio", "account_sid": SID, "auth_token": "t", "from": "+15005550006"});
    let cases = [
        (
            json!({"provider": "twilio", "account_sid": "XX1", "auth_token": "t", "from": "+15005550006"}),
            "account_sid",
        ),
        (
            json!({"provider": "twilio", "account_sid": SID, "auth_token": "t", "from": "555-0100"}),
            "from",
        ),
        (
            json!({"provider": "twilio", "account_sid": SID, "auth_token": "t", "from": "+15005550006", "messaging_service_sid": "MG1"}),
            "from",
        ),
        (
            json!({"provider": "twilio", "account_sid": SID, "auth_token": "t", "from": "+15005550006", "base_url": "ftp://x"}),
            "base_url",
        ),
        (
            json!({"provider": "twilio", "account_sid": SID, "auth_token": " ", "from": "+15005550006"}),
            "auth_token",
        ),
        (
            json!({"provider": "fcm", "project_id": "Bad Project", "auth": {"kind": "token", "access_token": "x"}}),
            "project_id",
        ),
        (
            json!({"provider": "fcm", "project_id": "p", "auth": {"kind": "service_account", "client_email": "a@b", "private_key": "not a key"}}),
            "auth.private_key",
        ),
        (
            json!({"provider": "fcm", "project_id": "p", "auth": {"kind": "token", "access_token": ""}}),
            "auth.access_token",
        ),
        (
            json!({"provider": "webhook", "signing_secret": "short"}),
            "signing_secret",
        ),
        (
            json!({"provider": "smtp", "host": "localhost", "from": "nobody"}),
            "from",
        ),
    ];
    let clock: Arc<dyn cairn_channels::WallClock> = clock();
    assert!(serde_json::from_value::<ProviderConfig>(valid_twilio)
        .unwrap()
        .build(clock.clone())
        .is_ok());
    for (settings, expected) in cases {
        let config: ProviderConfig = serde_json::from_value(settings.clone()).unwrap();
        match config.build(clock.clone()) {
            Err(ChannelError::InvalidConfig {
                setting, reason, ..
            }) => assert_eq!(setting, expected, "{settings}: {reason}"),
            Err(other) => panic!("{settings}: {other:?}"),
            Ok(_) => panic!("{settings} was accepted"),
        }
    }
    let typo = serde_json::from_value::<ProviderConfig>(
        json!({"provider": "webhook", "signing_secret": "0123456789abcdef", "timout_ms": 5}),
    );
    assert!(
        typo.unwrap_err().to_string().contains("timout_ms"),
        "unknown keys are rejected"
    );
}
