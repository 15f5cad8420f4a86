//! The one typed configuration: defaults → TOML file → `CAIRN_` environment variables → flags.
//!
//! Unknown keys are rejected, in the file and in the environment (nested keys use `__`:
//! `CAIRN_INGEST__QUEUE_CAPACITY_EVENTS`). A few `CAIRN_` variables are not configuration and are
//! ignored here: [`NOT_CONFIG_ENV`].

use anyhow::{bail, Context};
use cairn_api::WorkspaceAccess;
use cairn_engine::EngineOptions;
use cairn_model::WorkspaceId;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `CAIRN_` variables that select or accompany the configuration rather than being part of it.
pub const NOT_CONFIG_ENV: &[&str] = &["config", "log", "bin", "api_token"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Directory of the embedded store.
    pub data_dir: PathBuf,
    /// `text` or `json` logs on stderr.
    pub log_format: LogFormat,
    pub ingest: IngestConfig,
    pub state: StateConfig,
    /// Message delivery: providers per channel, retries, tracking links (see `docs/channels.md`).
    /// Without it, journeys still decide messages (visible in the outbox) but nothing is sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<cairn_dispatch::DispatchOptions>,
    pub workspaces: Vec<WorkspaceConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Most events waiting for the log writer before requests get 429.
    pub queue_capacity_events: usize,
    /// Most events per group commit.
    pub max_commit_events: usize,
    /// Most events durable in the log but not yet applied before requests get 429.
    pub max_apply_lag_events: u64,
    /// How long a messageId is remembered to drop client retries.
    pub dedupe_window_hours: u64,
    /// Most messageIds remembered (about 50 bytes of memory each); the oldest are forgotten first.
    pub dedupe_max_entries: usize,
}

/// How the state derived from the log is checkpointed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateConfig {
    /// Longest time between two checkpoints; bounds the log replay after a crash.
    pub checkpoint_interval_secs: u64,
    /// A checkpoint is also written once this many events wait for one.
    pub checkpoint_max_pending_events: usize,
    /// How often (ms) the ticker checks whether a journey timer is due.
    pub tick_interval_ms: u64,
}

impl Default for StateConfig {
    fn default() -> Self {
        let engine = EngineOptions::default();
        StateConfig {
            checkpoint_interval_secs: engine.checkpoint_interval.as_secs(),
            checkpoint_max_pending_events: engine.checkpoint_max_pending_events,
            tick_interval_ms: engine
                .tick_interval
                .map_or(200, |interval| interval.as_millis() as u64),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceConfig {
    pub id: String,
    #[serde(default)]
    pub write_keys: Vec<String>,
    #[serde(default)]
    pub api_tokens: Vec<String>,
    /// Customer 360: the ruleset document (match rules, protection, reconciliation, and usually
    /// the `[[source]]` mappings); without it the workspace keeps exact identity only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_rules: Option<PathBuf>,
    /// Further `[[source]]` mappings in a document of their own (needs `identity_rules`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<PathBuf>,
    /// Federated attributes: `[[attribute]]` connectors fetched on demand by the 360 view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("cairn-data"),
            log_format: LogFormat::Text,
            ingest: IngestConfig::default(),
            state: StateConfig::default(),
            delivery: None,
            workspaces: Vec::new(),
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        let engine = EngineOptions::default();
        IngestConfig {
            queue_capacity_events: engine.queue_capacity_events,
            max_commit_events: engine.max_commit_events,
            max_apply_lag_events: engine.max_apply_lag_events,
            dedupe_window_hours: engine.dedupe_window.as_secs() / 3600,
            dedupe_max_entries: engine.dedupe_max_entries,
        }
    }
}

/// Values given as command-line flags; they override everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
}

impl Config {
    /// Loads the layered configuration.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                bail!("config file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment.merge(Env::prefixed("CAIRN_").split("__").ignore(NOT_CONFIG_ENV));
        if let Some(listen) = overrides.listen {
            figment = figment.merge(("listen", listen));
        }
        if let Some(data_dir) = &overrides.data_dir {
            figment = figment.merge(("data_dir", data_dir));
        }
        let config: Config = figment
            .extract()
            .map_err(|error| anyhow::anyhow!("invalid configuration: {error}"))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        for workspace in &self.workspaces {
            if workspace.id.trim().is_empty() {
                bail!("invalid configuration: a workspace has an empty id");
            }
        }
        cairn_api::Access::new(&self.workspace_access())
            .map_err(|error| anyhow::anyhow!("invalid configuration: {error}"))?;
        crate::identity_config::load_identity(self)?;
        if self.ingest.queue_capacity_events == 0
            || self.ingest.max_commit_events == 0
            || self.ingest.max_apply_lag_events == 0
            || self.state.checkpoint_max_pending_events == 0
        {
            bail!("invalid configuration: ingest and state capacities must be positive");
        }
        Ok(())
    }

    pub fn workspace_access(&self) -> Vec<WorkspaceAccess> {
        self.workspaces
            .iter()
            .map(|w| WorkspaceAccess {
                workspace: WorkspaceId::new(w.id.clone()),
                write_keys: w.write_keys.clone(),
                api_tokens: w.api_tokens.clone(),
            })
            .collect()
    }

    pub fn engine_options(&self) -> EngineOptions {
        EngineOptions {
            queue_capacity_events: self.ingest.queue_capacity_events,
            max_commit_events: self.ingest.max_commit_events,
            max_apply_lag_events: self.ingest.max_apply_lag_events,
            dedupe_window: Duration::from_secs(
                self.ingest.dedupe_window_hours.saturating_mul(3600),
            ),
            dedupe_max_entries: self.ingest.dedupe_max_entries,
            checkpoint_interval: Duration::from_secs(self.state.checkpoint_interval_secs),
            checkpoint_max_pending_events: self.state.checkpoint_max_pending_events,
            checkpoint_on_shutdown: true,
            tick_interval: Some(Duration::from_millis(self.state.tick_interval_ms.max(1))),
            ..EngineOptions::default()
        }
    }

    /// The configuration as TOML, for `--dump-config`.
    pub fn to_toml(&self) -> anyhow::Result<String> {
        toml::to_string_pretty(self).context("could not render the configuration")
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment's large error type
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order_and_unknown_keys_are_rejected() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "cairn.toml",
                r#"
                listen = "127.0.0.1:9000"
                data_dir = "from-file"
                [ingest]
                max_commit_events = 500
                [[workspaces]]
                id = "acme"
                write_keys = ["wk"]
                api_tokens = ["tok"]
                "#,
            )?;
            jail.set_env("CAIRN_DATA_DIR", "from-env");
            jail.set_env("CAIRN_INGEST__QUEUE_CAPACITY_EVENTS", "1234");
            jail.set_env("CAIRN_BIN", "/not/config");
            let overrides = Overrides {
                listen: Some("127.0.0.1:7000".parse().expect("addr")),
                data_dir: None,
            };
            let config = Config::load(Some(Path::new("cairn.toml")), &overrides).expect("loads");
            assert_eq!(
                config.listen,
                "127.0.0.1:7000".parse().expect("addr"),
                "flags win"
            );
            assert_eq!(
                config.data_dir,
                PathBuf::from("from-env"),
                "environment beats the file"
            );
            assert_eq!(config.ingest.max_commit_events, 500, "file beats defaults");
            assert_eq!(config.ingest.queue_capacity_events, 1234);
            assert_eq!(config.workspaces[0].write_keys, vec!["wk".to_string()]);

            jail.set_env("CAIRN_LISTNE", "typo");
            let error = Config::load(Some(Path::new("cairn.toml")), &Overrides::default())
                .expect_err("unknown env key");
            assert!(error.to_string().contains("listne"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn unknown_file_keys_and_shared_keys_are_rejected() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[ingest]\nqueue_capacity = 3\n")?;
            assert!(Config::load(Some(Path::new("bad.toml")), &Overrides::default()).is_err());
            jail.create_file(
                "shared.toml",
                "[[workspaces]]\nid = \"a\"\nwrite_keys = [\"k\"]\n[[workspaces]]\nid = \"b\"\nwrite_keys = [\"k\"]\n",
            )?;
            let error = Config::load(Some(Path::new("shared.toml")), &Overrides::default())
                .expect_err("shared key");
            assert!(error.to_string().contains("shared"), "{error}");
            Ok(())
        });
    }
}
