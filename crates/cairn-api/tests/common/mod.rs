//! A real server for the HTTP tests: the engine over the real store in a temporary directory, a manual
//! clock, the API on a loopback port, two workspaces (`acme`, `globex`) — and small request helpers.
#![allow(dead_code)]

use cairn_api::{Access, ApiState, WorkspaceAccess};
use cairn_engine::{Engine, EngineOptions, ManualClock};
use cairn_model::WorkspaceId;
use chrono::{TimeZone, Utc};
use reqwest::StatusCode;
use serde_json::Value;
use std::sync::Arc;

pub struct Server {
    pub base: String,
    pub engine: Option<Engine>,
    pub clock: Arc<ManualClock>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(engine) = self.engine.take() {
            engine.shutdown();
        }
    }
}

/// Starts a server whose clock reads 2024-05-01T12:00:00Z until a test moves it.
pub async fn start(options: EngineOptions) -> Server {
    start_with(options, |state| state).await
}

/// Like [`start`], serving tracking links and provider callbacks with `delivery`.
pub async fn start_with_delivery(
    options: EngineOptions,
    delivery: cairn_api::DeliverySettings,
) -> Server {
    start_with(options, |state| state.with_delivery(delivery)).await
}

/// [`start`] with the API state adjusted by `adjust` (federated attributes, for example).
pub async fn start_with(
    options: EngineOptions,
    adjust: impl FnOnce(ApiState) -> ApiState,
) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = cairn_store_sqlite::open(dir.path()).expect("store");
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0)
            .single()
            .expect("time"),
    ));
    let engine = Engine::start(options, backend, clock.clone()).expect("engine");
    let access = Access::new(&[
        WorkspaceAccess {
            workspace: WorkspaceId::new("acme"),
            write_keys: vec!["wk_acme".into()],
            api_tokens: vec!["tok_acme".into()],
        },
        WorkspaceAccess {
            workspace: WorkspaceId::new("globex"),
            write_keys: vec!["wk_globex".into()],
            api_tokens: vec!["tok_globex".into()],
        },
    ])
    .expect("access");
    let state = adjust(ApiState::new(&engine, access));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(cairn_api::serve(listener, state, async {
        let _ = stopped.await;
    }));
    Server {
        base,
        engine: Some(engine),
        clock,
        shutdown: Some(shutdown),
        _dir: dir,
    }
}

/// Options for journey tests: no background ticker, so only [`Server::pass`] moves time.
pub fn manual_time() -> EngineOptions {
    EngineOptions {
        tick_interval: None,
        ..EngineOptions::default()
    }
}

impl Server {
    fn engine(&self) -> &Engine {
        self.engine.as_ref().expect("running")
    }

    /// Moves the clock forward and waits until every timer due by then has fired.
    pub async fn pass(&self, duration: chrono::Duration) {
        self.clock.advance(duration);
        let ingestor = self.engine().ingestor();
        let reader = self.engine().reader();
        let now = cairn_engine::Clock::now(self.clock.as_ref());
        tokio::task::spawn_blocking(move || {
            let receipt = ingestor.submit_tick_blocking(now).expect("tick");
            assert!(reader.wait_for(receipt.seq), "the tick was applied");
        })
        .await
        .expect("tick task");
    }

    /// The clock's time as RFC 3339 with milliseconds (how the API writes instants).
    pub fn now_text(&self) -> String {
        cairn_engine::Clock::now(self.clock.as_ref())
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }
}

pub fn client() -> reqwest::Client {
    // The workspace's reqwest is built with rustls and no crypto provider (see cairn-channels).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn answer(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A tracking call with a write key.
pub async fn post(server: &Server, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
    let response = client()
        .post(format!("{}{path}", server.base))
        .basic_auth(key, Some(""))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    answer(response).await
}

/// A management read with an API token.
pub async fn get(server: &Server, path: &str, token: &str) -> (StatusCode, Value) {
    let response = client()
        .get(format!("{}{path}", server.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    answer(response).await
}

/// A management call with an API token, a method, and a body of the given content type.
pub async fn send(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    token: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, Value) {
    let mut request = client()
        .request(method, format!("{}{path}", server.base))
        .bearer_auth(token)
        .body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    answer(request.send().await.expect("request")).await
}

/// A management `POST` with a JSON body.
pub async fn post_json(
    server: &Server,
    path: &str,
    token: &str,
    body: Value,
) -> (StatusCode, Value) {
    send(
        server,
        reqwest::Method::POST,
        path,
        token,
        Some("application/json"),
        body.to_string(),
    )
    .await
}

/// A management `PUT` of a YAML document.
pub async fn put_yaml(server: &Server, path: &str, token: &str, yaml: &str) -> (StatusCode, Value) {
    send(
        server,
        reqwest::Method::PUT,
        path,
        token,
        Some("application/yaml"),
        yaml.to_string(),
    )
    .await
}

/// Asserts an error answer: its status and its stable code.
pub fn assert_code(
    status: StatusCode,
    body: &Value,
    expected: StatusCode,
    code: &str,
    context: &str,
) {
    assert_eq!(
        (status, body["code"].as_str()),
        (expected, Some(code)),
        "{context}: {body}"
    );
}
