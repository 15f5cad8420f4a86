//! A real Cairn server inside the benchmark process: a fresh store in a temporary directory, the
//! engine with default options and the system clock, and the HTTP API on a loopback port.
//!
//! Nothing is mocked: the store has its production durability (WAL, `synchronous=FULL`), requests go
//! through the same router, authentication, validation and group commit as `cairn serve`.

use super::usage::SERVER_THREADS;
use anyhow::Context;
use cairn_api::{Access, ApiState, WorkspaceAccess};
use cairn_engine::{Engine, EngineOptions, Metrics, SystemClock};
use cairn_model::WorkspaceId;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::oneshot;

/// The benchmark's workspace.
pub const WORKSPACE: &str = "bench";
/// Its write key.
pub const WRITE_KEY: &str = "bench-key";

/// Starts the engine on a fresh store in `dir`, exactly as `cairn serve` does.
pub fn start_engine(dir: &Path) -> anyhow::Result<Engine> {
    let backend = cairn_store_sqlite::open(dir)
        .with_context(|| format!("cannot open a store in {}", dir.display()))?;
    Engine::start(EngineOptions::default(), backend, Arc::new(SystemClock))
        .context("cannot start the engine")
}

/// A running server; [`BenchServer::stop`] shuts it down and removes its data.
pub struct BenchServer {
    // Field order is drop order: the runtime and engine go before the directory they use.
    runtime: tokio::runtime::Runtime,
    engine: Engine,
    address: SocketAddr,
    stop: oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl BenchServer {
    pub fn start() -> anyhow::Result<BenchServer> {
        let dir = tempfile::Builder::new()
            .prefix("cairn-bench-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        let engine = start_engine(dir.path())?;
        let access = Access::new(&[WorkspaceAccess {
            workspace: WorkspaceId::new(WORKSPACE),
            write_keys: vec![WRITE_KEY.into()],
            api_tokens: Vec::new(),
        }])
        .map_err(anyhow::Error::msg)?;
        let state = ApiState::new(&engine, access);
        // Like `cairn serve`: a multi-threaded runtime with one worker per core.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name(SERVER_THREADS)
            .enable_all()
            .build()
            .context("cannot start the server runtime")?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(SocketAddr::from((
                [127, 0, 0, 1],
                0,
            ))))
            .context("cannot listen on loopback")?;
        let address = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = runtime.spawn(cairn_api::serve(listener, state, async {
            let _ = stopped.await;
        }));
        Ok(BenchServer {
            runtime,
            engine,
            address,
            stop,
            serving,
            _dir: dir,
        })
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.engine.metrics()
    }

    /// Stops the HTTP server, lets the writer finish, and removes the data directory.
    pub fn stop(self) -> anyhow::Result<()> {
        let BenchServer {
            runtime,
            engine,
            stop,
            serving,
            _dir,
            ..
        } = self;
        let _ = stop.send(());
        runtime
            .block_on(serving)
            .context("the server task failed")?
            .context("the HTTP server failed")?;
        engine.shutdown();
        drop(runtime);
        Ok(())
    }
}
