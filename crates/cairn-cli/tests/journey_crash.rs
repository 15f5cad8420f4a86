//! Crash safety of journeys: `kill -9` while timers are firing and customers are entering; after
//! each restart every due timer fires exactly once, and the per-step counters equal a recount from
//! the enrollments and their messages.
//!
//! The real `cairn serve` runs on a temporary data directory. A journey is published through the
//! management API: entry on `Crash Enrolled`, wait 1 s, send an email, wait 2 s, send a reminder,
//! exit. Clients post batches of [`PROFILES_PER_BATCH`] entry events (one profile each) while the
//! server's own ticker fires the timers of the profiles that entered before; the server is SIGKILLed
//! mid-load [`ROUNDS`] times (each time with timers already fired and others still waiting), then
//! restarted on the same directory. The server has no injectable clock, so the waits are real but
//! short, and every wait in the test is bounded polling, never a fixed sleep. At the end:
//!
//! - every acknowledged entry's profile exists; every profile that exists entered exactly once;
//! - every enrollment ended and has exactly its two messages (email, reminder), each with its own
//!   deterministic id, no id twice across all profiles, and the ids seen before a crash are the
//!   same after it (the replay recomputed the same messages, it did not add others);
//! - the journey's counters equal a recount: entered = profiles, ended = profiles, nobody current,
//!   and each step's `entered` equals the number of enrollments that reached it, and each send
//!   step's equals the number of its messages in the outbox.

mod common;

use common::{api_get, api_send, http_client, poll, post_batch, profile_id, seed_catalog, Server};
use reqwest::{Client, Method};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const JOURNEY: &str = "crash-timers";
/// The journey's steps in order (it is linear).
const STEPS: [&str; 5] = ["first_wait", "email", "second_wait", "reminder", "done"];
/// Its send steps and their templates.
const SENDS: [(&str, &str); 2] = [("email", "crash-email"), ("reminder", "crash-reminder")];
/// Kill/restart cycles.
const ROUNDS: usize = 3;
/// Concurrent clients posting entry events.
const CLIENTS: usize = 2;
const PROFILES_PER_BATCH: usize = 5;
/// Acknowledged entries a round needs before the kill, and timers that must have fired by then.
const MIN_ACKED_PER_ROUND: usize = 40;
/// Most batches per client and round (bounds the profiles to verify).
const MAX_BATCHES_PER_CLIENT: usize = 40;
/// Generous limits for a loaded 2-core machine: they bound waiting, they assert nothing about speed.
const LOAD_TIMEOUT: Duration = Duration::from_secs(90);
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

fn journey_document() -> Value {
    json!({
        "id": JOURNEY,
        "name": "Crash timers",
        "entry": {"event": {"name": "Crash Enrolled"}},
        "start": "first_wait",
        "steps": [
            {"id": "first_wait", "type": "wait", "duration": "1s", "next": "email"},
            {"id": "email", "type": "send", "channel": "email", "template": "crash-email", "next": "second_wait"},
            {"id": "second_wait", "type": "wait", "duration": "2s", "next": "reminder"},
            {"id": "reminder", "type": "send", "channel": "email", "template": "crash-reminder", "next": "done"},
            {"id": "done", "type": "exit"}
        ]
    })
}

fn user(round: usize, client: usize, batch: usize, slot: usize) -> String {
    format!("r{round}-c{client}-b{batch}-p{slot}")
}

fn batch_body(users: &[String]) -> Value {
    let batch: Vec<Value> = users
        .iter()
        .map(|user| {
            json!({"type": "track", "userId": user, "event": "Crash Enrolled",
                "messageId": format!("{user}-enter")})
        })
        .collect();
    json!({ "batch": batch })
}

/// Clients post entry batches until `stop` or their batch limit; every user sent, and whether its
/// batch was acknowledged.
fn load(
    base: &str,
    round: usize,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<Vec<(String, bool)>>> {
    (0..CLIENTS)
        .map(|client_no| {
            let (base, stop, acked) = (base.to_owned(), stop.clone(), acked.clone());
            tokio::spawn(async move {
                let client = http_client();
                let mut sent = Vec::new();
                for batch in 0..MAX_BATCHES_PER_CLIENT {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    let users: Vec<String> = (0..PROFILES_PER_BATCH)
                        .map(|slot| user(round, client_no, batch, slot))
                        .collect();
                    let ok = post_batch(&client, &base, &batch_body(&users)).await;
                    if ok {
                        acked.fetch_add(users.len(), Ordering::AcqRel);
                    }
                    sent.extend(users.into_iter().map(|user| (user, ok)));
                    // Spread the entries over the round, so timers keep coming due during the load.
                    tokio::time::sleep(Duration::from_millis(40)).await;
                }
                sent
            })
        })
        .collect()
}

/// The journey's stats (`versions[0]`).
async fn stats(client: &Client, base: &str) -> Value {
    let stats = api_get(client, base, &format!("/api/v1/journeys/{JOURNEY}/stats"))
        .await
        .expect("the journey exists");
    stats["versions"][0].clone()
}

/// How many enrollments passed the email step, by the counters.
fn emails_counted(version: &Value) -> u64 {
    version["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|step| step["step"] == "email"))
        .and_then(|step| step["entered"].as_u64())
        .unwrap_or(0)
}

/// What one profile holds for the journey.
#[derive(Debug)]
struct Enrolled {
    entries: u64,
    /// The active enrollment's step, `None` once ended.
    active_step: Option<String>,
    ended: bool,
    /// (message id, template) of the journey's messages.
    messages: Vec<(String, String)>,
}

async fn enrolled(client: &Client, base: &str, profile: &str) -> Enrolled {
    let view = api_get(
        client,
        base,
        &format!("/api/v1/profiles/{profile}/journeys"),
    )
    .await
    .expect("the profile exists");
    let history = view["history"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|entry| entry["journey"] == JOURNEY);
    let active: Vec<&Value> = view["enrollments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|enrollment| enrollment["journey"] == JOURNEY)
        .collect();
    assert!(
        active.len() <= 1,
        "{profile} has several active enrollments: {view}"
    );
    let messages = api_get(
        client,
        base,
        &format!("/api/v1/profiles/{profile}/messages?limit=100"),
    )
    .await
    .expect("the profile exists");
    let messages = messages["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|message| message["journey_id"] == JOURNEY)
        .map(|message| {
            (
                message["message_id"]
                    .as_str()
                    .expect("a message id")
                    .to_owned(),
                message["template"].as_str().expect("a template").to_owned(),
            )
        })
        .collect();
    Enrolled {
        entries: history
            .and_then(|entry| entry["entries"].as_u64())
            .unwrap_or(0),
        active_step: active
            .first()
            .map(|enrollment| enrollment["step"].as_str().expect("a step").to_owned()),
        ended: history.is_some_and(|entry| !entry["last_ended_at"].is_null()) && active.is_empty(),
        messages,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_timer_heavy_load_fires_every_due_timer_exactly_once() {
    let work = tempfile::tempdir().expect("temporary directory");
    let data_dir = work.path().join("data");
    let mut server = Server::start(work.path(), &data_dir, 0, "").await;
    let client = http_client();
    seed_catalog(&client, &server.base, &["Crash Enrolled"]).await;
    api_send(
        &client,
        Method::POST,
        &server.base,
        "/api/v1/journeys",
        &journey_document(),
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

    let mut sent: Vec<(String, bool)> = Vec::new();
    // Message ids read before a crash, by user: they must be the same after it.
    let mut seen_before: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for round in 0..ROUNDS {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicUsize::new(0));
        let emails_before = emails_counted(&stats(&client, &server.base).await);
        let clients = load(&server.base, round, stop.clone(), acked.clone());
        // Kill mid-load, once this round's entries are acknowledged and its timers have started
        // firing (more emails counted than before the round).
        let started = Instant::now();
        loop {
            let emails = emails_counted(&stats(&client, &server.base).await);
            if acked.load(Ordering::Acquire) >= MIN_ACKED_PER_ROUND && emails > emails_before {
                break;
            }
            assert!(
                started.elapsed() < LOAD_TIMEOUT,
                "round {round}: {} entries acknowledged, {emails} emails counted after {LOAD_TIMEOUT:?}; log:\n{}",
                acked.load(Ordering::Acquire),
                server.log_text()
            );
            assert!(
                !clients.iter().all(|client| client.is_finished()),
                "round {round}: the load ended before the kill condition held"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A sample of messages the server shows before the kill.
        for (user, _) in sent.iter().filter(|(_, ok)| *ok).take(20) {
            if let Some(profile) = profile_id(&client, &server.base, user).await {
                let ids = enrolled(&client, &server.base, &profile)
                    .await
                    .messages
                    .into_iter()
                    .map(|(id, _)| id);
                seen_before.entry(user.clone()).or_default().extend(ids);
            }
        }
        server.sigkill();
        stop.store(true, Ordering::Release);
        let mut round_sent = Vec::new();
        for client in clients {
            round_sent.extend(client.await.expect("a client task panicked"));
        }
        let acked_now = round_sent.iter().filter(|(_, ok)| *ok).count();
        eprintln!(
            "round {round}: {} entries sent, {acked_now} acknowledged before the kill",
            round_sent.len()
        );
        assert!(
            acked_now >= MIN_ACKED_PER_ROUND,
            "round {round}: only {acked_now} acknowledged"
        );
        sent.extend(round_sent);
        server = Server::start(work.path(), &data_dir, round + 1, "").await;
    }

    // Every enrollment runs to its end: the timers due during the downtime fire after the restart.
    let version = poll("every enrollment ended", SETTLE_TIMEOUT, || {
        let (client, base) = (client.clone(), server.base.clone());
        async move {
            let version = stats(&client, &base).await;
            (version["entered"].as_u64() > Some(0) && version["current"] == 0).then_some(version)
        }
    })
    .await;

    let mut profiles = 0u64;
    let mut reached = vec![0u64; STEPS.len()];
    let mut messages_by_template: BTreeMap<String, u64> = BTreeMap::new();
    let mut all_ids: BTreeSet<String> = BTreeSet::new();
    for (user, acked) in &sent {
        let Some(profile) = profile_id(&client, &server.base, user).await else {
            assert!(
                !acked,
                "the acknowledged entry of {user} was lost by a crash"
            );
            continue;
        };
        profiles += 1;
        let state = enrolled(&client, &server.base, &profile).await;
        assert_eq!(
            state.entries, 1,
            "{user} must have entered exactly once: {state:?}"
        );
        assert!(
            state.ended && state.active_step.is_none(),
            "{user} has not finished: {state:?}"
        );
        // Ended: it went through every step of the linear journey.
        for count in &mut reached {
            *count += 1;
        }
        let templates: Vec<&str> = state
            .messages
            .iter()
            .map(|(_, template)| template.as_str())
            .collect();
        let mut sorted = templates.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            vec!["crash-email", "crash-reminder"],
            "{user} must have exactly one email and one reminder: {state:?}"
        );
        for (id, template) in &state.messages {
            assert!(
                all_ids.insert(id.clone()),
                "message id {id} appears twice ({user})"
            );
            *messages_by_template.entry(template.clone()).or_default() += 1;
        }
        if let Some(before) = seen_before.get(user) {
            let after: BTreeSet<String> = state.messages.iter().map(|(id, _)| id.clone()).collect();
            assert!(
                before.is_subset(&after),
                "{user}: messages before the crash {before:?} are not all among those after it {after:?}"
            );
        }
    }
    eprintln!(
        "{} entries sent, {profiles} profiles enrolled, {} messages, {} message ids checked across crashes",
        sent.len(),
        all_ids.len(),
        seen_before.values().map(BTreeSet::len).sum::<usize>()
    );
    assert!(
        seen_before.values().map(BTreeSet::len).sum::<usize>() > 0,
        "no message was seen before a crash: the determinism check checked nothing"
    );

    // The counters against the recount.
    assert_eq!(
        version["entered"].as_u64(),
        Some(profiles),
        "entered: {version}"
    );
    let ended: u64 = version["ended"]
        .as_object()
        .expect("ended by reason")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(ended, profiles, "ended: {version}");
    let steps = version["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), STEPS.len(), "{version}");
    for (index, step) in steps.iter().enumerate() {
        assert_eq!(step["step"], STEPS[index], "{version}");
        assert_eq!(
            step["current"], 0,
            "nobody is at {}: {version}",
            STEPS[index]
        );
        assert_eq!(
            step["entered"].as_u64(),
            Some(reached[index]),
            "enrollments that reached {}: {version}",
            STEPS[index]
        );
    }
    for (step, template) in SENDS {
        let counted = steps
            .iter()
            .find(|candidate| candidate["step"] == step)
            .and_then(|candidate| candidate["entered"].as_u64());
        assert_eq!(
            counted,
            Some(messages_by_template.get(template).copied().unwrap_or(0)),
            "step {step}'s counter against its messages in the outbox: {version}"
        );
    }
    drop(server);
}
