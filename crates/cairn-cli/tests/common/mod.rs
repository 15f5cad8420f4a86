//! Helpers shared by the tests that run the real `cairn serve` binary: a server on a free port and
//! a data directory (SIGKILLed and reaped when dropped), an HTTP client, management API reads, and
//! bounded polling.
//!
//! Each test file uses a part of this module, so the rest is dead code from its point of view.
#![allow(dead_code)]

use reqwest::{Client, StatusCode};
use serde_json::Value;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const WRITE_KEY: &str = "wk_acme";
pub const API_TOKEN: &str = "tok_acme";
/// Generous limits for a loaded 2-core machine; they bound waiting, they assert nothing about speed.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `cairn serve`, killed (SIGKILL) and reaped when dropped, so no server outlives a panic.
pub struct Server {
    child: Child,
    pub base: String,
    log: PathBuf,
}

impl Server {
    /// Starts `cairn serve` on `data_dir` with workspace `acme` and `extra_config` (TOML appended to
    /// the configuration, e.g. a `[delivery]` table) and waits until `/readyz` answers 200.
    pub async fn start(
        work: &Path,
        data_dir: &Path,
        generation: usize,
        extra_config: &str,
    ) -> Server {
        // The port comes from the OS and is released before the server binds it; in the rare case
        // that someone else takes it in between, the server exits and we try another one.
        let mut last_log = String::new();
        for attempt in 0..5 {
            let port = free_port();
            let config = work.join(format!("cairn-{generation}-{attempt}.toml"));
            std::fs::write(
                &config,
                format!(
                    "listen = \"127.0.0.1:{port}\"\n\
                     data_dir = {data_dir:?}\n\
                     [[workspaces]]\n\
                     id = \"acme\"\n\
                     write_keys = [\"{WRITE_KEY}\"]\n\
                     api_tokens = [\"{API_TOKEN}\"]\n\
                     {extra_config}\n",
                    data_dir = data_dir.to_str().expect("UTF-8 temporary path"),
                ),
            )
            .expect("write the configuration");
            let log = work.join(format!("server-{generation}-{attempt}.log"));
            let child = Command::new(env!("CARGO_BIN_EXE_cairn"))
                .arg("--config")
                .arg(&config)
                .arg("serve")
                .env("CAIRN_LOG", "info")
                .env_remove("CAIRN_API_TOKEN")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(File::create(&log).expect("create the server log"))
                .spawn()
                .expect("start cairn serve");
            let mut server = Server {
                child,
                base: format!("http://127.0.0.1:{port}"),
                log,
            };
            if server.wait_ready().await {
                return server;
            }
            last_log = server.log_text();
        }
        panic!("cairn serve did not start after 5 attempts; last log:\n{last_log}");
    }

    /// Polls `/readyz`; false if the process exited first (e.g. its port was taken).
    async fn wait_ready(&mut self) -> bool {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("HTTP client");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the server process") {
                eprintln!(
                    "cairn serve exited before it was ready ({status}):\n{}",
                    self.log_text()
                );
                return false;
            }
            if let Ok(response) = client.get(format!("{}/readyz", self.base)).send().await {
                if response.status() == StatusCode::OK {
                    return true;
                }
            }
            assert!(
                Instant::now() < deadline,
                "cairn serve was not ready within {READY_TIMEOUT:?}; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL (`Child::kill` on Unix) and reap: no shutdown hook, no final commit, no flush.
    pub fn sigkill(mut self) {
        self.child.kill().expect("SIGKILL the server");
        let status = self.child.wait().expect("reap the server");
        assert!(
            !status.success(),
            "the server should have died of SIGKILL, got {status}"
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("local address")
        .port()
}

pub fn http_client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("HTTP client")
}

/// `GET {base}{path}` with the API token: `None` for 404, the JSON body for 200, a panic otherwise.
pub async fn api_get(client: &Client, base: &str, path: &str) -> Option<Value> {
    let response = client
        .get(format!("{base}{path}"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap_or_else(|error| panic!("GET {path} failed: {error}"));
    match response.status() {
        StatusCode::NOT_FOUND => None,
        StatusCode::OK => Some(
            response
                .json()
                .await
                .unwrap_or_else(|error| panic!("GET {path}: not JSON: {error}")),
        ),
        status => panic!("GET {path} answered {status}: {:?}", response.text().await),
    }
}

/// `{method} {base}{path}` with the API token and a JSON body; the JSON answer of a 2xx, else a panic.
pub async fn api_send(
    client: &Client,
    method: reqwest::Method,
    base: &str,
    path: &str,
    body: &Value,
) -> Value {
    let response = client
        .request(method.clone(), format!("{base}{path}"))
        .bearer_auth(API_TOKEN)
        .json(body)
        .send()
        .await
        .unwrap_or_else(|error| panic!("{method} {path} failed: {error}"));
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert!(
        status.is_success(),
        "{method} {path} answered {status}: {text}"
    );
    serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("{method} {path}: not JSON ({error}): {text}"))
}

/// The profile id of a user id, if the profile exists.
pub async fn profile_id(client: &Client, base: &str, user_id: &str) -> Option<String> {
    let profile = api_get(
        client,
        base,
        &format!("/api/v1/profiles/lookup?user_id={user_id}"),
    )
    .await?;
    Some(
        profile["id"]
            .as_str()
            .unwrap_or_else(|| panic!("a profile without id: {profile}"))
            .to_owned(),
    )
}

/// Posts a `/v1/batch` body; whether the server acknowledged every event (200, nothing rejected).
pub async fn post_batch(client: &Client, base: &str, body: &Value) -> bool {
    let Ok(response) = client
        .post(format!("{base}/v1/batch"))
        .basic_auth(WRITE_KEY, Some(""))
        .json(body)
        .send()
        .await
    else {
        return false;
    };
    if response.status() != StatusCode::OK {
        return false;
    }
    let Ok(value) = response.json::<Value>().await else {
        return false;
    };
    value["success"] == Value::Bool(true) && value["rejected"] == serde_json::json!([])
}

/// Polls `check` every 100 ms until it returns `Some`, or panics with `what` after `timeout`.
pub async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Makes `events` known to the workspace's catalog (journeys may only use events it has seen): one
/// of each from a profile of their own, then polls `/api/v1/catalog` until it lists them.
pub async fn seed_catalog(client: &Client, base: &str, events: &[&str]) {
    let batch: Vec<Value> = events
        .iter()
        .map(|event| serde_json::json!({"type": "track", "userId": "catalog-seed", "event": event}))
        .collect();
    assert!(
        post_batch(client, base, &serde_json::json!({ "batch": batch })).await,
        "the catalog seed events were not acknowledged"
    );
    poll(
        "the catalog lists the seeded events",
        READY_TIMEOUT,
        || async {
            let catalog = api_get(client, base, "/api/v1/catalog").await?;
            let text = catalog.to_string();
            events
                .iter()
                .all(|event| text.contains(&format!("\"{event}\"")))
                .then_some(())
        },
    )
    .await;
}
