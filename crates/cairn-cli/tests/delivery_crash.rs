//! Crash safety of delivery: `kill -9` of the server [`KILLS`] times while it sends; an SMTP sink and
//! an HTTP stand-in in this test process count every message id. None is lost, and none is
//! delivered twice except those the in-doubt policy explicitly allows (the count is printed).
//!
//! Set-up: two templates (an email, a webhook body) are published through the engine's command log
//! in-process on the data directory, before the server first starts (the management API for
//! templates is not part of this binary's routes); the journey is published through the management
//! API: entry on `Order Placed`, send the email, send the webhook, exit. Several hundred profiles
//! (each an `identify` with an email address and the entry event) are ingested and acknowledged.
//! Both channels are configured with `in_doubt = "resend"` and a rate limit, so the sending lasts
//! across many restarts; each server generation is killed as soon as the sinks saw new deliveries
//! from it (a different number each time), so every kill lands while messages are in flight.
//!
//! - SMTP: the sink records the `Message-ID` header of each message it accepted (`<id@domain>`,
//!   derived from Cairn's deterministic message id);
//! - webhook: the receiver records the `Idempotency-Key` header (Cairn's message id) of each request
//!   it answered 200.
//!
//! At the end every outbox message of every profile was delivered at least once, nothing else was
//! delivered, and the deliveries beyond the first are at most the messages the dispatchers reported
//! as in doubt and resent (`cairn_deliveries_in_doubt_total{policy="resend"}`, summed over every
//! server generation).

mod common;

use cairn_engine::journeys::Command;
use cairn_engine::{Engine, EngineOptions, SystemClock};
use cairn_model::WorkspaceId;
use common::{api_get, api_send, http_client, poll, post_batch, profile_id, seed_catalog, Server};
use reqwest::{Client, Method};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const JOURNEY: &str = "crash-delivery";
/// Server generations killed while sending.
const KILLS: usize = 20;
const PROFILES: usize = 500;
const PROFILES_PER_BATCH: usize = 50;
/// Messages per second per channel (so the sending spans the restarts).
const RATE_PER_CHANNEL: u32 = 15;
const WEBHOOK_SECRET: &str = "a-webhook-signing-secret-of-32-bytes!";
/// Generous limits for a loaded 2-core machine: they bound waiting, they assert nothing about speed.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(60);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);

/// Every id each stand-in accepted, in arrival order (duplicates kept).
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<String>>>);

impl Received {
    fn push(&self, id: String) {
        self.0.lock().expect("sink lock").push(id);
    }

    fn len(&self) -> usize {
        self.0.lock().expect("sink lock").len()
    }

    /// Deliveries per id.
    fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for id in self.0.lock().expect("sink lock").iter() {
            *counts.entry(id.clone()).or_default() += 1;
        }
        counts
    }
}

/// Binds a loopback port and serves each connection with `session` on a task of its own.
async fn serve_loopback<Session, Served>(what: &str, session: Session) -> u16
where
    Session: Fn(TcpStream) -> Served + Send + 'static,
    Served: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect(what);
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(session(socket));
        }
    });
    port
}

/// A minimal SMTP responder (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT): records each accepted
/// message's Cairn message id from its `Message-ID: <id@domain>` header.
async fn smtp_sink(received: Received) -> u16 {
    serve_loopback("bind the SMTP sink", move |socket| {
        smtp_session(socket, received.clone())
    })
    .await
}

/// One connection of [`smtp_sink`].
async fn smtp_session(socket: TcpStream, received: Received) {
    let (reader, mut writer) = socket.into_split();
    let mut reader = BufReader::new(reader);
    if writer.write_all(b"220 sink ESMTP\r\n").await.is_err() {
        return;
    }
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let answer: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            "DATA" => {
                if writer.write_all(b"354 go ahead\r\n").await.is_err() {
                    return;
                }
                let mut message_id = None;
                let mut in_headers = true;
                loop {
                    line.clear();
                    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    if line == "\r\n" {
                        in_headers = false;
                    }
                    if in_headers {
                        if let Some((name, value)) = line.split_once(':') {
                            if name.eq_ignore_ascii_case("message-id") {
                                message_id = Some(value.trim().to_owned());
                            }
                        }
                    }
                }
                let id = message_id
                    .as_deref()
                    .and_then(|header| header.strip_prefix('<'))
                    .and_then(|header| header.split_once('@'))
                    .map(|(id, _)| id.to_owned())
                    .unwrap_or_else(|| format!("no Message-ID: {message_id:?}"));
                received.push(id);
                b"250 OK queued\r\n"
            }
            "QUIT" => {
                let _ = writer.write_all(b"221 bye\r\n").await;
                return;
            }
            _ => b"250 OK\r\n",
        };
        if writer.write_all(answer).await.is_err() {
            return;
        }
    }
}

/// A minimal HTTP/1.1 receiver for the webhook: records each request's `Idempotency-Key` and
/// answers 200 with an empty JSON object.
async fn http_receiver(received: Received) -> u16 {
    serve_loopback("bind the HTTP receiver", move |socket| {
        http_session(socket, received.clone())
    })
    .await
}

/// One connection of [`http_receiver`].
async fn http_session(socket: TcpStream, received: Received) {
    let (reader, mut writer) = socket.into_split();
    let mut reader = BufReader::new(reader);
    let mut line = String::new();
    loop {
        let (mut length, mut key) = (0usize, None);
        loop {
            line.clear();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("idempotency-key") {
                    key = Some(value.trim().to_owned());
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        received.push(key.unwrap_or_else(|| "no Idempotency-Key".into()));
        let answer =
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        if writer.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Publishes the two templates through the engine's command log, on the data directory.
fn seed_templates(data_dir: &Path) {
    let backend = cairn_store_sqlite::open(data_dir).expect("open the store");
    let engine = Engine::start(EngineOptions::default(), backend, Arc::new(SystemClock))
        .expect("start the engine");
    let templates = [
        json!({"id": "crash-mail", "name": "Order received", "channel": "email", "default_locale": "en",
            "variants": {"en": {"subject": "We got your order",
                "html": "<p>Thanks, {{ profile.email }}.</p><p><a href=\"{{ message.unsubscribe_url }}\">Unsubscribe</a></p>",
                "text": "Thanks, {{ profile.email }}."}}}),
        json!({"id": "crash-hook", "name": "Order to the CRM", "channel": "webhook", "default_locale": "en",
            "variants": {"en": {"json": "{\"email\": {{ profile.email | tojson }}}"}}}),
    ];
    let clock = SystemClock;
    for template in templates {
        let document: cairn_template::TemplateDocument =
            serde_json::from_value(template).expect("a template document");
        let id = document.id.clone();
        for command in [
            Command::SaveTemplate {
                document: Box::new(document),
            },
            Command::PublishTemplate { template: id },
        ] {
            let receipt = engine
                .ingestor()
                .submit_command_blocking(
                    WorkspaceId::new("acme"),
                    &command,
                    cairn_engine::Clock::now(&clock),
                )
                .expect("the command is committed");
            let outcome = engine
                .reader()
                .command_outcome(receipt.seq)
                .expect("an outcome");
            assert!(outcome.ok, "{command:?}: {outcome:?}");
        }
    }
    engine.shutdown();
}

fn delivery_config(smtp_port: u16) -> String {
    format!(
        "[delivery]\n\
         batch_size = 8\n\
         poll_interval_ms = 200\n\
         [delivery.email]\n\
         in_doubt = \"resend\"\n\
         rate_per_second = {RATE_PER_CHANNEL}\n\
         concurrency = 4\n\
         [delivery.email.provider]\n\
         provider = \"smtp\"\n\
         host = \"127.0.0.1\"\n\
         port = {smtp_port}\n\
         security = \"none\"\n\
         from = \"Shop <orders@shop.example.com>\"\n\
         [delivery.webhook]\n\
         in_doubt = \"resend\"\n\
         rate_per_second = {RATE_PER_CHANNEL}\n\
         concurrency = 4\n\
         [delivery.webhook.provider]\n\
         provider = \"webhook\"\n\
         signing_secret = \"{WEBHOOK_SECRET}\"\n\
         [delivery.tracking]\n\
         base_url = \"http://127.0.0.1:9\"\n\
         keys = [\"a-tracking-signing-key-of-32-bytes-or-more\"]\n"
    )
}

fn journey_document(http_port: u16) -> Value {
    json!({
        "id": JOURNEY,
        "name": "Order notifications",
        "entry": {"event": {"name": "Order Placed"}},
        "start": "mail",
        "steps": [
            {"id": "mail", "type": "send", "channel": "email", "template": "crash-mail", "next": "hook"},
            {"id": "hook", "type": "send", "channel": "webhook", "template": "crash-hook",
                "settings": {"url": format!("http://127.0.0.1:{http_port}/orders")}, "next": "done"},
            {"id": "done", "type": "exit"}
        ]
    })
}

fn user(n: usize) -> String {
    format!("buyer-{n:04}")
}

/// The sum of `cairn_deliveries_in_doubt_total` series with `policy="resend"` on `/metrics`.
async fn in_doubt_resent(client: &Client, base: &str) -> u64 {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|line| {
            line.starts_with("cairn_deliveries_in_doubt_total")
                && line.contains("policy=\"resend\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|value| value as u64)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_twenty_times_during_sending_loses_nothing_and_duplicates_only_in_doubt_resends() {
    let (emails, hooks) = (Received::default(), Received::default());
    let smtp_port = smtp_sink(emails.clone()).await;
    let http_port = http_receiver(hooks.clone()).await;
    let delivered = || emails.len() + hooks.len();

    let work = tempfile::tempdir().expect("temporary directory");
    let data_dir = work.path().join("data");
    // The engine's blocking API may not run on the test's runtime threads.
    let seeded = data_dir.clone();
    tokio::task::spawn_blocking(move || seed_templates(&seeded))
        .await
        .expect("seeding the templates panicked");
    let config = delivery_config(smtp_port);
    let client = http_client();
    let mut server = Server::start(work.path(), &data_dir, 0, &config).await;
    seed_catalog(&client, &server.base, &["Order Placed"]).await;
    api_send(
        &client,
        Method::POST,
        &server.base,
        "/api/v1/journeys",
        &journey_document(http_port),
    )
    .await;
    let published = api_send(
        &client,
        Method::POST,
        &server.base,
        &format!("/api/v1/journeys/{JOURNEY}/publish"),
        &json!({}),
    )
    .await;
    assert_eq!(published["published_version"], 1, "{published}");

    for first in (0..PROFILES).step_by(PROFILES_PER_BATCH) {
        let batch: Vec<Value> = (first..(first + PROFILES_PER_BATCH).min(PROFILES))
            .flat_map(|n| {
                let user = user(n);
                [
                    json!({"type": "identify", "userId": user, "messageId": format!("{user}-id"),
                        "traits": {"email": format!("{user}@example.com")}}),
                    json!({"type": "track", "userId": user, "messageId": format!("{user}-order"),
                        "event": "Order Placed", "properties": {"total": 42}}),
                ]
            })
            .collect();
        assert!(
            post_batch(&client, &server.base, &json!({ "batch": batch })).await,
            "the profiles' events were not acknowledged"
        );
    }
    let expected_total = 2 * PROFILES;

    let mut resent_in_doubt = 0;
    for kill in 0..KILLS {
        // Kill once this generation delivered something new: 1 to 4 messages, so the kills land at
        // different points of a batch.
        let before = delivered();
        let wanted = 1 + kill % 4;
        let started = Instant::now();
        while delivered() < before + wanted && delivered() < expected_total {
            assert!(
                started.elapsed() < PROGRESS_TIMEOUT,
                "generation {kill}: nothing delivered within {PROGRESS_TIMEOUT:?}; log:\n{}",
                server.log_text()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        resent_in_doubt += in_doubt_resent(&client, &server.base).await;
        assert!(
            delivered() < expected_total,
            "everything was delivered before kill {kill}: the kills no longer land during sending \
             (lower RATE_PER_CHANNEL or raise PROFILES)"
        );
        server.sigkill();
        eprintln!(
            "kill {kill}: {} emails and {} webhooks received so far",
            emails.len(),
            hooks.len()
        );
        server = Server::start(work.path(), &data_dir, kill + 1, &config).await;
    }

    // What must have been delivered: every outbox message of every profile.
    let mut expected: BTreeMap<String, &'static str> = BTreeMap::new();
    for n in 0..PROFILES {
        let profile = profile_id(&client, &server.base, &user(n))
            .await
            .unwrap_or_else(|| panic!("the acknowledged profile {} was lost", user(n)));
        let messages = api_get(
            &client,
            &server.base,
            &format!("/api/v1/profiles/{profile}/messages?limit=100"),
        )
        .await
        .expect("the profile exists");
        let mut channels = Vec::new();
        for message in messages["messages"].as_array().into_iter().flatten() {
            let id = message["message_id"]
                .as_str()
                .expect("a message id")
                .to_owned();
            let channel = match message["channel"].as_str() {
                Some("email") => "email",
                Some("webhook") => "webhook",
                other => panic!("an unexpected channel {other:?}: {message}"),
            };
            assert_eq!(
                message["delivery"]["decision"],
                "send",
                "{} was not to be sent: {message}",
                user(n)
            );
            channels.push(channel);
            assert!(
                expected.insert(id, channel).is_none(),
                "a message id twice in the outbox"
            );
        }
        channels.sort_unstable();
        assert_eq!(channels, ["email", "webhook"], "{}'s messages", user(n));
    }
    assert_eq!(expected.len(), expected_total);

    // Drain: every expected message reaches its stand-in.
    poll("every message was delivered", DRAIN_TIMEOUT, || {
        let (emails, hooks, expected) = (emails.counts(), hooks.counts(), &expected);
        async move {
            expected
                .iter()
                .all(|(id, channel)| {
                    let counts = if *channel == "email" { &emails } else { &hooks };
                    counts.contains_key(id)
                })
                .then_some(())
        }
    })
    .await;
    resent_in_doubt += in_doubt_resent(&client, &server.base).await;

    let mut duplicates = 0;
    for (channel, counts) in [("email", emails.counts()), ("webhook", hooks.counts())] {
        for (id, count) in counts {
            assert_eq!(
                expected.get(&id).copied(),
                Some(channel),
                "{channel} stand-in received {id:?}, which is not one of the outbox's {channel} messages"
            );
            duplicates += count - 1;
        }
    }
    eprintln!(
        "{expected_total} messages delivered across {KILLS} kills: {} emails and {} webhooks received, \
         {duplicates} duplicate deliveries, {resent_in_doubt} messages resent as in doubt (allowed)",
        emails.len(),
        hooks.len()
    );
    assert!(
        duplicates as u64 <= resent_in_doubt,
        "{duplicates} duplicate deliveries but only {resent_in_doubt} in-doubt resends allowed"
    );
    drop(server);
}
