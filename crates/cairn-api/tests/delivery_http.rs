//! The delivery HTTP surfaces against a real engine and store: signed tracking links (open pixel,
//! click redirect, unsubscribe page and RFC 8058 one-click), provider callbacks with their
//! credentials, templates, delivery records and consent. Bad input — forged tokens, wrong secrets
//! and signatures, malformed bodies — gets its documented status and code and records nothing.

mod common;

use base64::Engine as _;
use cairn_api::DeliverySettings;
use cairn_delivery::feedback::twilio::twilio_signature;
use cairn_delivery::{SigningKey, TrackingIds, TrackingSigner};
use cairn_storage::{DeliveryRecord, DeliveryState};
use common::{assert_code, client, get, post, post_json, send, start_with_delivery, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

const BASE: &str = "https://t.example.com";
const SECRET: &str = "callback-secret";
const TWILIO_TOKEN: &str = "twilio-auth-token";

fn signer(key: u8) -> TrackingSigner {
    TrackingSigner::new(
        BASE,
        vec![SigningKey::new(vec![key; 32], "k").expect("key")],
    )
    .expect("signer")
}

fn settings() -> DeliverySettings {
    DeliverySettings {
        signer: Some(signer(7)),
        callback_secret: Some(SECRET.into()),
        twilio_auth_token: Some(TWILIO_TOKEN.into()),
        public_url: Some(BASE.into()),
    }
}

async fn server() -> Server {
    start_with_delivery(common::manual_time(), settings()).await
}

/// Creates `ann` in `acme` and answers her profile id.
async fn ann(server: &Server) -> String {
    let (status, _) = post(
        server,
        "/v1/identify",
        "wk_acme",
        json!({"userId": "ann", "traits": {"email": "ann@example.com", "first_name": "Ann"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, profile) = get(server, "/api/v1/profiles/lookup?user_id=ann", "tok_acme").await;
    assert_eq!(status, StatusCode::OK, "{profile}");
    profile["id"].as_str().expect("id").to_string()
}

fn ids(profile: &str) -> TrackingIds {
    TrackingIds {
        message_id: "msg_1".into(),
        profile_id: profile.into(),
    }
}

/// The path of a signed URL under the base.
fn path_of(url: &str) -> String {
    url.strip_prefix(BASE).expect("under the base").to_string()
}

/// The names of a profile's events, newest first.
async fn event_names(server: &Server, profile: &str) -> Vec<String> {
    let (status, body) = get(
        server,
        &format!("/api/v1/profiles/{profile}/events?limit=100"),
        "tok_acme",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|event| event["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn consent(server: &Server, profile: &str) -> Value {
    let (status, body) = get(
        server,
        &format!("/api/v1/profiles/{profile}/consent"),
        "tok_acme",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn raw(
    method: reqwest::Method,
    server: &Server,
    path: &str,
    body: &'static str,
) -> reqwest::Response {
    let _ = client(); // installs the crypto provider
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .request(method, format!("{}{path}", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("request")
}

async fn code_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn opens_clicks_and_unsubscribes_are_recorded_once_and_change_consent() {
    let server = server().await;
    let profile = ann(&server).await;
    let signer = signer(7);
    let before = event_names(&server, &profile).await.len();

    let open = path_of(&signer.open_url(&ids(&profile)).expect("open"));
    for _ in 0..2 {
        let response = raw(reqwest::Method::GET, &server, &open, "").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "image/gif");
        assert!(response.bytes().await.expect("body").starts_with(b"GIF89a"));
    }
    let click = path_of(
        &signer
            .click_url(&ids(&profile), 2, "https://shop.example.com/p?a=1&b=2")
            .expect("click"),
    );
    let response = raw(reqwest::Method::GET, &server, &click, "").await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(
        response.headers()["location"],
        "https://shop.example.com/p?a=1&b=2"
    );

    let unsubscribe = path_of(&signer.unsubscribe_url(&ids(&profile), None).expect("u"));
    let page = raw(reqwest::Method::GET, &server, &unsubscribe, "").await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(html.contains(r#"value="One-Click""#), "{html}");
    assert!(html.contains(&format!(r#"action="{BASE}{unsubscribe}""#)));
    assert_eq!(
        consent(&server, &profile).await["channels"]["email"]["status"],
        "unknown",
        "showing the page unsubscribes nobody"
    );
    let (status, body) =
        code_of(raw(reqwest::Method::POST, &server, &unsubscribe, "confirm=yes").await).await;
    assert_code(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_body",
        "no one-click body",
    );
    let done = raw(
        reqwest::Method::POST,
        &server,
        &unsubscribe,
        "List-Unsubscribe=One-Click",
    )
    .await;
    assert_eq!(done.status(), StatusCode::OK);

    let names = event_names(&server, &profile).await;
    let new: Vec<&str> = names[..names.len() - before]
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(
        new,
        ["Email Unsubscribed", "Email Clicked", "Email Opened"],
        "a repeated open is one event"
    );
    let consent_now = consent(&server, &profile).await;
    assert_eq!(
        consent_now["channels"]["email"]["status"], "opted_out",
        "{consent_now}"
    );
    assert_eq!(consent_now["globally_unsubscribed"], false);

    let group = path_of(&signer.unsubscribe_url(&ids(&profile), Some(4)).expect("u"));
    let response = raw(
        reqwest::Method::POST,
        &server,
        &group,
        "List-Unsubscribe=One-Click&scope=all",
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let consent_now = consent(&server, &profile).await;
    assert_eq!(consent_now["globally_unsubscribed"], true, "{consent_now}");
}

#[tokio::test]
async fn forged_tampered_and_misused_tokens_are_404_and_record_nothing() {
    let server = server().await;
    let profile = ann(&server).await;
    let before = event_names(&server, &profile).await;
    let forger = signer(8);
    let genuine = signer(7);
    let forged_click = path_of(
        &forger
            .click_url(&ids(&profile), 0, "https://evil.example.com")
            .expect("click"),
    );
    let open_token = genuine
        .open_url(&ids(&profile))
        .expect("open")
        .rsplit('/')
        .next()
        .expect("token")
        .to_string();
    let (payload, tag) = open_token.split_once('.').expect("token shape");
    let evil_payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
        "t1\nc\nmsg_1\n{profile}\n0\nhttps://evil.example.com"
    ));
    let cases = [
        ("GET", forged_click.clone(), "forged click"),
        (
            "GET",
            format!("/t/c/{evil_payload}.{tag}"),
            "payload swapped under a genuine tag",
        ),
        (
            "GET",
            format!("/t/c/{open_token}"),
            "an open token on the click route",
        ),
        (
            "GET",
            format!("/t/o/{payload}.AAAAAAAAAAAAAAAAAAAAAA"),
            "tampered tag",
        ),
        ("GET", "/t/o/not-a-token".to_string(), "junk"),
        (
            "GET",
            format!("/u/{open_token}"),
            "an open token on the unsubscribe page",
        ),
        (
            "POST",
            format!("/u/{open_token}"),
            "an open token posted to unsubscribe",
        ),
        (
            "POST",
            path_of(&forger.unsubscribe_url(&ids(&profile), None).expect("u")),
            "forged unsubscribe",
        ),
    ];
    for (method, path, context) in cases {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let response = raw(method, &server, &path, "List-Unsubscribe=One-Click").await;
        assert!(
            response.headers().get("location").is_none(),
            "{context}: never a redirect"
        );
        let (status, body) = code_of(response).await;
        assert_code(
            status,
            &body,
            StatusCode::NOT_FOUND,
            "invalid_tracking_link",
            context,
        );
    }
    assert_eq!(
        event_names(&server, &profile).await,
        before,
        "nothing recorded"
    );
    assert_eq!(
        consent(&server, &profile).await["channels"]["email"]["status"],
        "unknown"
    );
}

#[tokio::test]
async fn without_delivery_settings_the_routes_are_not_configured() {
    let server = common::start(common::manual_time()).await;
    let token = signer(7).open_url(&ids("prof_1")).expect("open");
    let (status, body) =
        code_of(raw(reqwest::Method::GET, &server, &path_of(&token), "").await).await;
    assert_code(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "delivery_not_configured",
        "tracking",
    );
    let response = client()
        .post(format!("{}/hooks/feedback", server.base))
        .bearer_auth(SECRET)
        .body("[]")
        .send()
        .await
        .expect("request");
    let (status, body) = code_of(response).await;
    assert_code(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "delivery_not_configured",
        "callbacks",
    );
}

/// A sent message of `profile`, as the dispatcher records it.
fn sent(server: &Server, message_id: &str, channel: &str, profile: &str) {
    let record = DeliveryRecord {
        message_id: message_id.into(),
        workspace: cairn_model::WorkspaceId::new("acme"),
        channel: channel.into(),
        state: DeliveryState::Sent,
        attempts: 1,
        next_attempt_at_ms: None,
        provider: Some("smtp".into()),
        provider_message_id: None,
        last_error: None,
        updated_at_ms: 1,
        outbox: json!({"message_id": message_id, "profile_id": profile, "channel": channel})
            .to_string(),
    };
    server
        .engine
        .as_ref()
        .expect("engine")
        .delivery_store()
        .record(&[record])
        .expect("recorded");
}

async fn hook(
    server: &Server,
    path: &str,
    secret: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let mut request = client()
        .post(format!("{}{path}", server.base))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(secret) = secret {
        request = request.basic_auth("cairn", Some(secret));
    }
    code_of(request.send().await.expect("request")).await
}

#[tokio::test]
async fn bounce_webhooks_need_the_secret_and_a_valid_body_and_hard_bounces_suppress() {
    let server = server().await;
    let profile = ann(&server).await;
    sent(&server, "msg_b", "email", &profile);
    let before = event_names(&server, &profile).await;
    let bounce = r#"{"type":"bounced","message_id":"msg_b","recipient":"ann@example.com","timestamp":"2024-05-01T12:00:00Z","code":"5.1.1"}"#;
    let (status, body) = hook(&server, "/hooks/feedback", Some("wrong"), bounce).await;
    assert_code(
        status,
        &body,
        StatusCode::FORBIDDEN,
        "invalid_signature",
        "wrong secret",
    );
    let (status, body) = hook(&server, "/hooks/feedback", None, bounce).await;
    assert_code(
        status,
        &body,
        StatusCode::FORBIDDEN,
        "invalid_signature",
        "no secret",
    );
    for malformed in [
        "{",
        r#"{"type":"exploded","message_id":"msg_b","timestamp":1}"#,
        r#"[{"type":"bounced","message_id":"msg_b","timestamp":"noon"}]"#,
    ] {
        let (status, body) = hook(&server, "/hooks/feedback", Some(SECRET), malformed).await;
        assert_code(
            status,
            &body,
            StatusCode::BAD_REQUEST,
            "invalid_provider_callback",
            malformed,
        );
    }
    let (status, body) = hook(&server, "/hooks/sendgrid", Some(SECRET), "{}").await;
    assert_code(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_provider_callback",
        "sendgrid object",
    );
    assert_eq!(
        event_names(&server, &profile).await,
        before,
        "nothing recorded"
    );

    let (status, body) = hook(&server, "/hooks/feedback", Some(SECRET), bounce).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"recorded": 1, "unattributed": 0}));
    let unknown = r#"{"type":"bounced","message_id":"msg_unknown","timestamp":1}"#;
    let (_, body) = hook(&server, "/hooks/feedback", Some(SECRET), unknown).await;
    assert_eq!(body, json!({"recorded": 0, "unattributed": 1}));
    let sendgrid = r#"[{"email":"ann@example.com","timestamp":1714564800,"smtp-id":"<msg_b@mail.example.com>","event":"spamreport","sg_message_id":"sg1"}]"#;
    let (status, body) = hook(&server, "/hooks/sendgrid", Some(SECRET), sendgrid).await;
    assert_eq!(
        (status, body["recorded"].clone()),
        (StatusCode::OK, json!(1)),
        "{body}"
    );

    let names = event_names(&server, &profile).await;
    assert!(names.contains(&"Email Bounced".to_string()), "{names:?}");
    assert!(names.contains(&"Email Complained".to_string()), "{names:?}");
    let consent_now = consent(&server, &profile).await;
    assert_eq!(
        consent_now["undeliverable_addresses"],
        json!(["ann@example.com"])
    );
    assert_eq!(
        consent_now["channels"]["email"]["status"], "opted_out",
        "a complaint opts out"
    );
}

#[tokio::test]
async fn twilio_status_callbacks_are_verified_by_signature() {
    let server = server().await;
    let profile = ann(&server).await;
    sent(&server, "msg_s", "sms", &profile);
    let path = "/hooks/twilio/status?cairn_message_id=msg_s";
    let body = "MessageSid=SM1&MessageStatus=delivered&To=%2B14155550100";
    let good = twilio_signature(TWILIO_TOKEN, &format!("{BASE}{path}"), body.as_bytes());
    let wrong = twilio_signature("other", &format!("{BASE}{path}"), body.as_bytes());
    let call = |signature: Option<String>, body: &'static str| {
        let mut request = client()
            .post(format!("{}{path}", server.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(signature) = signature {
            request = request.header("x-twilio-signature", signature);
        }
        request.send()
    };
    let before = event_names(&server, &profile).await;
    for (signature, context) in [(None, "unsigned"), (Some(wrong), "wrong token")] {
        let (status, answer) = code_of(call(signature, body).await.expect("request")).await;
        assert_code(
            status,
            &answer,
            StatusCode::FORBIDDEN,
            "invalid_signature",
            context,
        );
    }
    let malformed = "MessageStatus=delivered";
    let signed = twilio_signature(TWILIO_TOKEN, &format!("{BASE}{path}"), malformed.as_bytes());
    let (status, answer) = code_of(call(Some(signed), malformed).await.expect("request")).await;
    assert_code(
        status,
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_provider_callback",
        "no sid",
    );
    assert_eq!(
        event_names(&server, &profile).await,
        before,
        "nothing recorded"
    );
    let (status, answer) = code_of(call(Some(good), body).await.expect("request")).await;
    assert_eq!(
        (status, answer["recorded"].clone()),
        (StatusCode::OK, json!(1)),
        "{answer}"
    );
    assert_eq!(event_names(&server, &profile).await[0], "SMS Delivered");
}

#[tokio::test]
async fn templates_are_saved_published_and_previewed_for_a_profile() {
    let server = server().await;
    let profile = ann(&server).await;
    let template = |html: &str| {
        json!({"id": "welcome", "channel": "email", "default_locale": "en",
               "variants": {"en": {"subject": "Hi {{ profile.first_name }}", "html": html,
                                   "text": "Hello {{ profile.first_name }}"}}})
        .to_string()
    };
    let put = |body: String| {
        send(
            &server,
            reqwest::Method::PUT,
            "/api/v1/templates/welcome",
            "tok_acme",
            Some("application/json"),
            body,
        )
    };
    let (status, body) = put(template("<p>{{ profile.nickname }}</p>")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        !body["errors"].as_array().expect("errors").is_empty(),
        "unknown variable: {body}"
    );
    let (status, body) = post_json(
        &server,
        "/api/v1/templates/welcome/publish",
        "tok_acme",
        json!({}),
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_template",
        "unknown variable",
    );
    assert!(body["errors"][0]["message"].is_string(), "{body}");
    let (status, body) = post_json(
        &server,
        "/api/v1/templates/welcome/preview",
        "tok_acme",
        json!({"profile_id": profile}),
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_template",
        "preview of an invalid draft",
    );

    let (status, body) = put(template("<p>Welcome {{ profile.first_name }}</p>")).await;
    assert_eq!(
        (status, body["errors"].clone()),
        (StatusCode::OK, json!([])),
        "{body}"
    );
    let (status, body) = post_json(
        &server,
        "/api/v1/templates/welcome/publish",
        "tok_acme",
        json!({}),
    )
    .await;
    assert_eq!(
        (status, body["published_version"].clone()),
        (StatusCode::CREATED, json!(1)),
        "{body}"
    );
    let (status, body) = post_json(
        &server,
        "/api/v1/templates/welcome/preview",
        "tok_acme",
        json!({"profile_id": profile, "version": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rendered"]["subject"], "Hi Ann");
    assert!(body["rendered"]["html"]
        .as_str()
        .expect("html")
        .contains("Welcome Ann"));

    let (status, body) = post_json(
        &server,
        "/api/v1/templates/nope/preview",
        "tok_acme",
        json!({"profile_id": profile}),
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "template_not_found",
        "unknown template",
    );
    let (status, body) = get(&server, "/api/v1/templates/welcome", "tok_globex").await;
    assert_code(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "template_not_found",
        "another workspace",
    );
    let (status, body) = get(&server, "/api/v1/templates", "tok_acme").await;
    assert_eq!(
        (status, body["templates"][0]["latest_version"].clone()),
        (StatusCode::OK, json!(1))
    );
}

#[tokio::test]
async fn delivery_records_are_listed_per_workspace_and_state() {
    let server = server().await;
    let profile = ann(&server).await;
    sent(&server, "msg_ok", "email", &profile);
    let (status, body) = get(&server, "/api/v1/deliveries?state=sent", "tok_acme").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["deliveries"][0]["message_id"], "msg_ok");
    assert_eq!(
        body["deliveries"][0]["message"]["profile_id"],
        json!(profile)
    );
    let (_, body) = get(&server, "/api/v1/deliveries?state=dead", "tok_acme").await;
    assert_eq!(body["deliveries"], json!([]));
    let (_, body) = get(&server, "/api/v1/deliveries", "tok_globex").await;
    assert_eq!(
        body["deliveries"],
        json!([]),
        "another workspace's records are not shown"
    );
    let (status, body) = get(&server, "/api/v1/deliveries?state=lost", "tok_acme").await;
    assert_code(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_query",
        "unknown state",
    );
    let (status, body) = get(&server, "/api/v1/deliveries", "").await;
    assert_code(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "missing_api_token",
        "no token",
    );
}

#[tokio::test]
async fn inbound_stop_and_start_from_a_profiles_phone_change_its_sms_consent() {
    let server = server().await;
    let (status, _) = post(
        &server,
        "/v1/identify",
        "wk_acme",
        json!({"userId": "sam", "traits": {"phone": "+1 415-555-0100"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, profile) = get(&server, "/api/v1/profiles/lookup?user_id=sam", "tok_acme").await;
    let profile = profile["id"].as_str().expect("id").to_string();
    let path = "/hooks/twilio/inbound/acme";
    let inbound = |body: &'static str, signed: bool| {
        let mut request = client()
            .post(format!("{}{path}", server.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if signed {
            let signature =
                twilio_signature(TWILIO_TOKEN, &format!("{BASE}{path}"), body.as_bytes());
            request = request.header("x-twilio-signature", signature);
        }
        request.send()
    };
    let stop = "From=%2B14155550100&To=%2B15005550006&MessageSid=SM1&Body=Stop";
    let (status, body) = code_of(inbound(stop, false).await.expect("request")).await;
    assert_code(
        status,
        &body,
        StatusCode::FORBIDDEN,
        "invalid_signature",
        "unsigned inbound",
    );
    let (status, body) = code_of(inbound("Body=STOP", true).await.expect("request")).await;
    assert_code(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_provider_callback",
        "no From",
    );
    assert_eq!(
        consent(&server, &profile).await["channels"]["sms"]["status"],
        "unknown"
    );

    let answer = inbound(stop, true).await.expect("request");
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(answer
        .text()
        .await
        .expect("twiml")
        .contains("<Response></Response>"));
    assert_eq!(
        consent(&server, &profile).await["channels"]["sms"]["status"],
        "opted_out"
    );
    let help = inbound(
        "From=%2B14155550100&To=%2B15005550006&MessageSid=SM2&Body=help",
        true,
    )
    .await
    .expect("request");
    assert!(help
        .text()
        .await
        .expect("twiml")
        .contains("<Message>Reply STOP"));
    let start = "From=%2B14155550100&To=%2B15005550006&MessageSid=SM3&Body=START";
    assert_eq!(
        inbound(start, true).await.expect("request").status(),
        StatusCode::OK
    );
    assert_eq!(
        consent(&server, &profile).await["channels"]["sms"]["status"],
        "opted_in"
    );
    let names = event_names(&server, &profile).await;
    assert_eq!(
        &names[..2],
        ["SMS Subscribed", "SMS Unsubscribed"],
        "{names:?}"
    );
}

#[tokio::test]
async fn ses_notifications_through_sns_are_attributed_and_confirmations_are_returned() {
    let server = server().await;
    let profile = ann(&server).await;
    sent(&server, "msg_ses", "email", &profile);
    let ses = json!({
        "notificationType": "Bounce",
        "mail": {"timestamp": "2024-05-01T12:00:00Z", "messageId": "ses-1",
                 "commonHeaders": {"messageId": "<msg_ses@mail.example.com>"}},
        "bounce": {"bounceType": "Transient", "timestamp": "2024-05-01T12:00:01Z",
                   "bouncedRecipients": [{"emailAddress": "ann@example.com", "status": "4.2.2"}]}
    });
    let envelope = json!({"Type": "Notification", "Message": ses.to_string()}).to_string();
    let (status, body) = hook(&server, "/hooks/ses", Some(SECRET), &envelope).await;
    assert_eq!(
        (status, body.clone()),
        (StatusCode::OK, json!({"recorded": 1, "unattributed": 0})),
        "{body}"
    );
    let (status, body) = hook(&server, "/hooks/ses", Some(SECRET), &envelope).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a re-delivered notification is accepted: {body}"
    );
    let names = event_names(&server, &profile).await;
    assert_eq!(
        names.iter().filter(|name| *name == "Email Bounced").count(),
        1,
        "{names:?}"
    );
    assert_eq!(
        consent(&server, &profile).await["undeliverable_addresses"],
        json!([]),
        "a soft bounce suppresses nothing"
    );
    let confirmation = json!({"Type": "SubscriptionConfirmation",
                              "SubscribeURL": "https://sns.example.com/confirm?t=1"})
    .to_string();
    let (status, body) = hook(&server, "/hooks/ses", Some(SECRET), &confirmation).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["subscription_confirmation_url"],
        "https://sns.example.com/confirm?t=1"
    );
    let (status, body) = hook(
        &server,
        "/hooks/ses",
        Some(SECRET),
        r#"{"Type":"Notification","Message":"{}"}"#,
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_provider_callback",
        "empty SES message",
    );
}
