//! Crash safety of ingest: `kill -9` while clients are sending loses nothing acknowledged,
//! duplicates nothing, and never leaves half a batch behind.
//!
//! The test runs the real `cairn serve` binary on a temporary data directory. Several concurrent
//! clients post batches of [`EVENTS_PER_BATCH`] track events to `/v1/batch`; every batch uses its own
//! `userId`, so one batch is one profile, and every event its own `messageId`. Each client records
//! whether the server acknowledged the batch (200, all events accepted). While requests are in flight
//! the server is SIGKILLed, then restarted on the same data directory, and through the management API:
//!
//! - every acknowledged batch's profile exists and holds exactly the batch's events, each once
//!   (the acknowledgement meant "durable"; the batch is not duplicated);
//! - every unacknowledged batch is either entirely absent or entirely present (a request's messages are
//!   committed in one transaction, so no half-batch is visible);
//! - batches seen after one restart stay exactly as they were after every later crash;
//! - client retries after the restart behave as the Segment contract promises: re-sending an
//!   acknowledged (or silently committed) batch reports every message as a duplicate and changes
//!   nothing, re-sending a lost batch stores it once.
//!
//! The kill/restart cycle is repeated [`ROUNDS`] times, each round killing the server at a different
//! moment, and each round must have acknowledged some batches before the kill, so the test can fail.

mod common;

use common::{http_client, Server, API_TOKEN, WRITE_KEY};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Events per batch (= per profile).
const EVENTS_PER_BATCH: usize = 20;
/// Concurrent client tasks sending batches.
const CLIENTS: usize = 6;
/// Kill/restart cycles.
const ROUNDS: usize = 3;
/// Batches that must be acknowledged in a round before the kill.
const MIN_ACKED_PER_ROUND: usize = 20;
/// Acknowledged batches of each round that are re-sent after the restart, as a retrying client would.
const ACKED_RETRIES_PER_ROUND: usize = 10;
/// A generous limit for a loaded 2-core machine; it bounds waiting, it asserts nothing about speed.
const LOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// One batch = one profile (its own `userId`) with [`EVENTS_PER_BATCH`] events of distinct message ids.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct BatchId {
    round: usize,
    client: usize,
    n: usize,
}

impl BatchId {
    fn user_id(&self) -> String {
        format!("r{}-c{}-b{}", self.round, self.client, self.n)
    }

    fn message_ids(&self) -> Vec<String> {
        (0..EVENTS_PER_BATCH)
            .map(|i| format!("{}-e{i}", self.user_id()))
            .collect()
    }

    fn body(&self) -> Value {
        let user_id = self.user_id();
        let batch: Vec<Value> = self
            .message_ids()
            .into_iter()
            .enumerate()
            .map(|(i, message_id)| {
                json!({
                    "type": "track",
                    "userId": user_id,
                    "event": "Crash Test Event",
                    "messageId": message_id,
                    "properties": {"index": i},
                })
            })
            .collect();
        json!({ "batch": batch })
    }
}

/// What a `/v1/batch` request came to.
#[derive(Debug)]
enum Sent {
    /// 200 with the parsed `accepted` and `duplicates`.
    Answered { accepted: u64, duplicates: u64 },
    /// Any other status, or no answer at all (connection reset by the kill, …).
    Failed(String),
}

async fn send_batch(client: &Client, base: &str, batch: &BatchId) -> Sent {
    let response = client
        .post(format!("{base}/v1/batch"))
        .basic_auth(WRITE_KEY, Some(""))
        .json(&batch.body())
        .send()
        .await;
    let response = match response {
        Ok(response) => response,
        Err(error) => return Sent::Failed(format!("no answer: {error}")),
    };
    let status = response.status();
    let body = match response.text().await {
        Ok(body) => body,
        Err(error) => return Sent::Failed(format!("{status} with an unreadable body: {error}")),
    };
    if status != StatusCode::OK {
        return Sent::Failed(format!("{status}: {body}"));
    }
    let value: Value = serde_json::from_str(&body)
        .unwrap_or_else(|error| panic!("200 with a non-JSON body {body:?}: {error}"));
    assert_eq!(
        value["success"],
        json!(true),
        "200 without success for {batch:?}: {value}"
    );
    assert_eq!(
        value["rejected"],
        json!([]),
        "valid messages were rejected for {batch:?}: {value}"
    );
    Sent::Answered {
        accepted: value["accepted"]
            .as_u64()
            .unwrap_or_else(|| panic!("no accepted count: {value}")),
        duplicates: value["duplicates"]
            .as_u64()
            .unwrap_or_else(|| panic!("no duplicates count: {value}")),
    }
}

/// What the store holds for a batch, read through the management API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    /// No profile for the batch's userId.
    Absent,
    /// Exactly the batch's events, each once.
    Complete,
}

/// Reads the batch's profile and timeline; panics on anything but "absent" or "complete, exactly once".
async fn stored(client: &Client, base: &str, batch: &BatchId) -> Stored {
    let response = client
        // User ids are `r<n>-c<n>-b<n>`: nothing to percent-encode.
        .get(format!(
            "{base}/api/v1/profiles/lookup?user_id={}",
            batch.user_id()
        ))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap_or_else(|error| panic!("profile lookup for {batch:?} failed: {error}"));
    match response.status() {
        StatusCode::NOT_FOUND => return Stored::Absent,
        StatusCode::OK => {}
        status => panic!(
            "profile lookup for {batch:?} answered {status}: {:?}",
            response.text().await
        ),
    }
    let profile: Value = response.json().await.expect("profile JSON");
    let id = profile["id"]
        .as_str()
        .unwrap_or_else(|| panic!("profile without id: {profile}"))
        .to_owned();
    let response = client
        .get(format!("{base}/api/v1/profiles/{id}/events?limit=1000"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap_or_else(|error| panic!("event list for {batch:?} failed: {error}"));
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "event list for {batch:?}"
    );
    let page: Value = response.json().await.expect("events JSON");
    let events = page["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events array: {page}"));
    let mut ids: Vec<String> = events
        .iter()
        .map(|event| {
            event["message_id"]
                .as_str()
                .unwrap_or_else(|| panic!("event without message_id: {event}"))
                .to_owned()
        })
        .collect();
    ids.sort();
    let mut expected = batch.message_ids();
    expected.sort();
    assert_eq!(
        ids, expected,
        "batch {batch:?} (profile {id}) must hold each of its {EVENTS_PER_BATCH} events exactly once, never part of them"
    );
    assert_eq!(
        profile["event_count"].as_i64(),
        Some(EVENTS_PER_BATCH as i64),
        "event_count of batch {batch:?} disagrees with its timeline: {profile}"
    );
    Stored::Complete
}

/// Reads every batch, a few at a time.
async fn read_all(base: &str, batches: Vec<BatchId>) -> Vec<(BatchId, Stored)> {
    const READERS: usize = 4;
    let client = http_client();
    let mut tasks = tokio::task::JoinSet::new();
    let chunk = batches.len().div_ceil(READERS).max(1);
    for part in batches.chunks(chunk) {
        let (client, base, part) = (client.clone(), base.to_owned(), part.to_vec());
        tasks.spawn(async move {
            let mut found = Vec::with_capacity(part.len());
            for batch in part {
                let state = stored(&client, &base, &batch).await;
                found.push((batch, state));
            }
            found
        });
    }
    let mut found = Vec::with_capacity(batches.len());
    while let Some(part) = tasks.join_next().await {
        found.extend(part.expect("a reader task panicked"));
    }
    found
}

/// Clients send batches until `stop`; returns every batch sent and whether it was acknowledged.
fn load(
    base: &str,
    round: usize,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<Vec<(BatchId, bool)>>> {
    (0..CLIENTS)
        .map(|client_no| {
            let (base, stop, acked) = (base.to_owned(), stop.clone(), acked.clone());
            tokio::spawn(async move {
                let client = http_client();
                let mut sent = Vec::new();
                for n in 0.. {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    let batch = BatchId {
                        round,
                        client: client_no,
                        n,
                    };
                    let ok = match send_batch(&client, &base, &batch).await {
                        Sent::Answered {
                            accepted,
                            duplicates,
                        } => {
                            assert_eq!(
                                (accepted, duplicates),
                                (EVENTS_PER_BATCH as u64, 0),
                                "a first send of {batch:?} must accept every event"
                            );
                            acked.fetch_add(1, Ordering::AcqRel);
                            true
                        }
                        // Expected once the server is killed; a failed batch is checked as unacknowledged.
                        Sent::Failed(reason) => {
                            if sent.iter().all(|(_, ok)| *ok) {
                                eprintln!("round {round}: client {client_no}: first unacknowledged batch {batch:?}: {reason}");
                            }
                            false
                        }
                    };
                    sent.push((batch, ok));
                }
                sent
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_ingest_loses_no_acknowledged_event_and_leaves_no_half_batch() {
    let work = tempfile::tempdir().expect("temporary directory");
    let data_dir = work.path().join("data");
    let mut server = Server::start(work.path(), &data_dir, 0, "").await;
    // Every batch ever sent and what the store must hold for it from now on.
    let mut expected: BTreeMap<BatchId, Stored> = BTreeMap::new();

    for round in 0..ROUNDS {
        // 1. Load, then SIGKILL while requests are in flight. Each round lets the load run a little
        //    longer, so the kill lands at different moments of the group-commit cycle.
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicUsize::new(0));
        let clients = load(&server.base, round, stop.clone(), acked.clone());
        let started = Instant::now();
        let min_load = Duration::from_millis(400 + 500 * round as u64);
        while acked.load(Ordering::Acquire) < MIN_ACKED_PER_ROUND || started.elapsed() < min_load {
            assert!(
                started.elapsed() < LOAD_TIMEOUT,
                "round {round}: only {} batches acknowledged within {LOAD_TIMEOUT:?}; log:\n{}",
                acked.load(Ordering::Acquire),
                server.log_text()
            );
            if let Some(finished) = clients.iter().position(|client| client.is_finished()) {
                panic!("round {round}: client {finished} stopped before the kill (a first send was not fully accepted?)");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.sigkill();
        stop.store(true, Ordering::Release);
        let mut sent = Vec::new();
        for client in clients {
            sent.extend(client.await.expect("a client task panicked"));
        }
        let acked_batches: Vec<BatchId> = sent
            .iter()
            .filter(|(_, ok)| *ok)
            .map(|(batch, _)| batch.clone())
            .collect();
        let unacked_batches: Vec<BatchId> = sent
            .iter()
            .filter(|(_, ok)| !*ok)
            .map(|(batch, _)| batch.clone())
            .collect();
        assert!(
            acked_batches.len() >= MIN_ACKED_PER_ROUND,
            "round {round}: only {} batches acknowledged before the kill",
            acked_batches.len()
        );

        // 2. Restart on the same data directory.
        server = Server::start(work.path(), &data_dir, round + 1, "").await;

        // 3. Acknowledged ⇒ complete, exactly once; unacknowledged ⇒ absent or complete;
        //    what earlier rounds left must be unchanged.
        let all: Vec<BatchId> = expected
            .keys()
            .cloned()
            .chain(sent.iter().map(|(batch, _)| batch.clone()))
            .collect();
        let found = read_all(&server.base, all).await;
        let acked_set: HashSet<&BatchId> = acked_batches.iter().collect();
        let mut unacked_committed = 0;
        for (batch, state) in found {
            match expected.get(&batch) {
                Some(before) => assert_eq!(
                    state, *before,
                    "round {round}: batch {batch:?} of an earlier round changed across the crash; log:\n{}",
                    server.log_text()
                ),
                None if acked_set.contains(&batch) => assert_eq!(
                    state,
                    Stored::Complete,
                    "round {round}: acknowledged batch {batch:?} was lost by the crash"
                ),
                None => unacked_committed += usize::from(state == Stored::Complete),
            }
            expected.insert(batch, state);
        }
        eprintln!(
            "round {round}: {} batches sent, {} acknowledged, {} unacknowledged ({unacked_committed} of them committed before the kill)",
            sent.len(),
            acked_batches.len(),
            unacked_batches.len()
        );

        // 4. Client retries after the restart: every unacknowledged batch, and some acknowledged ones
        //    of this round and of earlier rounds.
        let client = http_client();
        let retried_acked: Vec<BatchId> = acked_batches
            .iter()
            .take(ACKED_RETRIES_PER_ROUND)
            .chain(
                expected
                    .keys()
                    .filter(|batch| batch.round < round && batch.n == 0),
            )
            .cloned()
            .collect();
        for batch in unacked_batches.iter().chain(&retried_acked) {
            let answer = send_batch(&client, &server.base, batch).await;
            let Sent::Answered {
                accepted,
                duplicates,
            } = answer
            else {
                panic!(
                    "round {round}: retry of {batch:?} failed: {answer:?}; log:\n{}",
                    server.log_text()
                );
            };
            let want = match expected[batch] {
                Stored::Complete => (0, EVENTS_PER_BATCH as u64),
                Stored::Absent => (EVENTS_PER_BATCH as u64, 0),
            };
            assert_eq!(
                (accepted, duplicates),
                want,
                "round {round}: retry of {batch:?} (stored before: {:?}) as (accepted, duplicates)",
                expected[batch]
            );
            expected.insert(batch.clone(), Stored::Complete);
        }

        // 5. After the retries every batch sent so far is stored exactly once.
        let found = read_all(&server.base, expected.keys().cloned().collect()).await;
        for (batch, state) in found {
            assert_eq!(
                state,
                Stored::Complete,
                "round {round}: batch {batch:?} after the retries"
            );
        }
    }
    drop(server);
}
