//! `cairn serve`: the engine over the embedded store, the HTTP API, graceful shutdown on SIGINT/SIGTERM.

use crate::config::{Config, LogFormat};
use anyhow::Context;
use cairn_api::{Access, ApiState};
use cairn_engine::{Engine, SystemClock};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tracing_subscriber::EnvFilter;

/// Logs go to stderr; the filter comes from `CAIRN_LOG` (default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("CAIRN_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The engine's options with the workspaces' identity configurations: every process that applies
/// the log (server, import, offline reads) must apply source records the same way.
pub fn engine_options(config: &Config) -> anyhow::Result<cairn_engine::EngineOptions> {
    let mut options = config.engine_options();
    options.identity = crate::identity_config::load_identity(config)?;
    if let Some(delivery) = &config.delivery {
        options.activity = cairn_dispatch::activity::wants(&delivery.activity);
    }
    let federated = crate::identity_config::load_federated(config, &options.identity)?;
    options.federated = declared_sets(&federated);
    Ok(options)
}

/// The federated attribute sets each workspace declares, as journey validation knows them.
fn declared_sets(
    federated: &cairn_api::customer360::FederatedByWorkspace,
) -> cairn_engine::federated::FederatedSets {
    federated
        .iter()
        .map(|(workspace, attributes)| {
            let sets = cairn_engine::federated::DeclaredSets {
                readable: attributes.names().into_iter().map(str::to_string).collect(),
                writable: attributes.writable_names(),
            };
            (workspace.clone(), sets)
        })
        .collect()
}

/// Opens the store in the configured data directory and starts the engine on it.
pub fn start_engine(config: &Config) -> anyhow::Result<Engine> {
    let backend = cairn_store_sqlite::open(&config.data_dir)
        .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))?;
    Engine::start(engine_options(config)?, backend, Arc::new(SystemClock))
        .context("cannot start the engine")
}

/// Work that runs beside the server until shutdown (the demo's live event stream).
pub type Companion = Box<dyn FnOnce(&Engine) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Runs the server until SIGINT or SIGTERM.
pub fn serve(config: Config, companion: Option<Companion>) -> anyhow::Result<()> {
    let engine = start_engine(&config)?;
    serve_engine(&config, engine, companion)
}

pub fn serve_engine(
    config: &Config,
    engine: Engine,
    companion: Option<Companion>,
) -> anyhow::Result<()> {
    let access = Access::new(&config.workspace_access()).map_err(anyhow::Error::msg)?;
    // One set of federated connectors (and caches) for the 360 view, previews and the dispatcher.
    let identity = crate::identity_config::load_identity(config)?;
    let federated = crate::identity_config::load_federated(config, &identity)?;
    let mut state = ApiState::new(&engine, access).with_federated(federated.clone());
    if let Some(options) = &config.delivery {
        let settings = cairn_api::DeliverySettings::from_options(options)
            .context("invalid [delivery] tracking or callback settings")?;
        state = state.with_delivery(settings);
    }
    let dispatcher = match &config.delivery {
        Some(options) => Some(
            cairn_dispatch::Dispatcher::start_with_federated(options.clone(), &engine, federated)
                .context("cannot start message delivery")?,
        ),
        None => {
            tracing::warn!(
                "no [delivery] configured: journeys decide messages but nothing is sent"
            );
            None
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let address = listener.local_addr()?;
        tracing::info!(%address, data_dir = %config.data_dir.display(), "cairn is listening on http://{address}");
        if let Some(companion) = companion {
            tokio::spawn(companion(&engine));
        }
        cairn_api::serve(listener, state, shutdown_signal()).await.context("the HTTP server failed")
    })?;
    tracing::info!("shutting down: committing queued events and checkpointing the state");
    if let Some(dispatcher) = dispatcher {
        dispatcher.shutdown();
    }
    engine.shutdown();
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
