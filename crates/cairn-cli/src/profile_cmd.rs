//! `cairn profile get`: print a profile (JSON on stdout); `--360` prints its Customer 360 view.
//!
//! The newest state lives in the memory of the process that owns the data directory. So when a server
//! holds the directory, the command asks that server (the configured `listen` address, with an API
//! token of the workspace from the configuration); otherwise it opens the store itself, replays the log
//! after the last checkpoint, answers, and checkpoints on the way out.

use crate::api_client::{encode, ApiClient, ServerArgs};
use crate::cli_error::CliError;
use crate::config::Config;
use anyhow::Context;
use cairn_model::{ErrorCode, Identifier, IdentifierKind, ProfileId, WorkspaceId};
use cairn_storage::StorageError;
use clap::{Args, Subcommand};
use serde_json::Value;

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Print one profile as JSON, found by id or by one identifier.
    Get(GetArgs),
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Workspace id.
    #[arg(long)]
    workspace: String,
    /// Profile id (a merged-away id finds the surviving profile).
    #[arg(long, group = "key")]
    id: Option<String>,
    #[arg(long, group = "key")]
    user_id: Option<String>,
    #[arg(long, group = "key")]
    anonymous_id: Option<String>,
    #[arg(long, group = "key")]
    email: Option<String>,
    /// Also print the newest events (up to this many).
    #[arg(long, default_value_t = 0)]
    events: usize,
    /// Print the Customer 360 view instead: source records, reconciled attributes with provenance,
    /// journeys (from a server also federated attributes, messages and consents).
    #[arg(long = "360")]
    view_360: bool,
}

/// How the profile is looked up.
enum Key {
    Id(String),
    Identifier(Identifier),
}

fn not_found() -> anyhow::Error {
    CliError::raise(
        ErrorCode::ProfileNotFound,
        "no such profile in this workspace",
    )
}

pub fn run(config: &Config, command: ProfileCommand) -> anyhow::Result<()> {
    let ProfileCommand::Get(args) = command;
    let key = match (&args.id, &args.user_id, &args.anonymous_id, &args.email) {
        (Some(id), _, _, _) => Key::Id(id.clone()),
        (_, Some(user_id), _, _) => {
            Key::Identifier(Identifier::new(IdentifierKind::UserId, user_id))
        }
        (_, _, Some(anonymous_id), _) => {
            Key::Identifier(Identifier::new(IdentifierKind::AnonymousId, anonymous_id))
        }
        (_, _, _, Some(email)) => Key::Identifier(Identifier::email(email)),
        _ => {
            return Err(CliError::raise(
                ErrorCode::InvalidInput,
                "give one of --id, --user-id, --anonymous-id or --email",
            ))
        }
    };
    let workspace = WorkspaceId::new(args.workspace.clone());
    let output = match cairn_store_sqlite::open(&config.data_dir) {
        Ok(backend) => from_store(config, backend, &workspace, &key, &args)?,
        Err(StorageError::Locked(_)) => from_server(config, &workspace, &key, &args)?,
        Err(error) => {
            return Err(error)
                .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))
        }
    };
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(())
}

fn from_store(
    config: &Config,
    backend: cairn_storage::Backend,
    workspace: &WorkspaceId,
    key: &Key,
    args: &GetArgs,
) -> anyhow::Result<Value> {
    let engine = cairn_engine::Engine::start(
        crate::server::engine_options(config)?,
        backend,
        std::sync::Arc::new(cairn_engine::SystemClock),
    )?;
    let reader = engine.reader();
    let profile = match key {
        Key::Id(id) => ProfileId::parse(id).and_then(|id| reader.profile(workspace, &id)),
        Key::Identifier(identifier) => reader.profile_by_identifier(workspace, identifier),
    }
    .ok_or_else(not_found)?;
    let mut output = serde_json::to_value(&profile)?;
    if args.events > 0 {
        let events = reader
            .events(workspace, &profile.id, None, args.events)?
            .unwrap_or_default();
        output["events"] = serde_json::to_value(events)?;
    }
    if args.view_360 {
        let identity = reader
            .profile_identity(workspace, &profile.id)
            .unwrap_or_default();
        output["identity_configured"] = Value::Bool(identity.configured);
        output["unified_ids"] = serde_json::to_value(&identity.unified_ids)?;
        output["source_records"] = serde_json::to_value(&identity.records)?;
        output["reconciled"] = serde_json::to_value(&identity.reconciled)?;
        output["journeys"] = reader
            .profile_journeys(workspace, &profile.id)
            .unwrap_or(Value::Null);
    }
    drop(reader);
    engine.shutdown();
    Ok(output)
}

/// Asks the server that holds the data directory.
fn from_server(
    config: &Config,
    workspace: &WorkspaceId,
    key: &Key,
    args: &GetArgs,
) -> anyhow::Result<Value> {
    let client = ApiClient::new(
        config,
        &ServerArgs {
            workspace: Some(workspace.to_string()),
            token: None,
        },
    )
    .with_context(|| {
        format!(
            "a server holds {} and must be asked",
            config.data_dir.display()
        )
    })?;
    let path = match key {
        Key::Id(id) => format!("/api/v1/profiles/{}", encode(id)),
        Key::Identifier(identifier) => format!(
            "/api/v1/profiles/lookup?{}={}",
            identifier.kind.as_str(),
            encode(&identifier.value)
        ),
    };
    let mut profile = client.get(&path)?;
    if args.view_360 {
        let id = profile["id"].as_str().unwrap_or_default().to_string();
        return client.get(&format!("/api/v1/profiles/{}/360", encode(&id)));
    }
    let events = args.events;
    if events > 0 {
        let id = profile["id"].as_str().unwrap_or_default().to_string();
        let page = client.get(&format!(
            "/api/v1/profiles/{}/events?limit={events}",
            encode(&id)
        ))?;
        profile["events"] = page["events"].clone();
    }
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WorkspaceConfig;
    use cairn_engine::journeys::Command;
    use cairn_identity::RecordKey;

    #[test]
    fn the_360_view_offline_reads_source_records_and_shows_both_profiles_of_an_unmerge() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rules = dir.path().join("rules.toml");
        std::fs::write(
            &rules,
            include_str!("../../../tests/identity/crm-shop.toml"),
        )
        .expect("write");
        let config = Config {
            data_dir: dir.path().join("data"),
            workspaces: vec![WorkspaceConfig {
                id: "acme".into(),
                identity_rules: Some(rules),
                ..WorkspaceConfig::default()
            }],
            ..Config::default()
        };
        let workspace = WorkspaceId::new("acme");
        let (profile_id, shop_profile_id) = {
            let engine = crate::server::start_engine(&config).expect("engine");
            let apply = |command: Command| {
                let receipt = engine
                    .ingestor()
                    .submit_command_blocking(workspace.clone(), &command, chrono::Utc::now())
                    .expect("committed");
                let outcome = engine
                    .reader()
                    .command_outcome(receipt.seq)
                    .expect("applied");
                assert!(outcome.ok, "{outcome:?}");
            };
            let upsert =
                |source: &str, id: &str, fields: serde_json::Value| Command::UpsertSourceRecord {
                    source: source.into(),
                    id: id.into(),
                    fields: fields.as_object().cloned().expect("object"),
                };
            apply(upsert(
                "crm",
                "c-1",
                serde_json::json!({"first": "Ann", "last": "Lee", "email": "ann@x.org"}),
            ));
            // The same person in the shop (fuzzy name, same email), then an administrator's
            // un-merge: two profiles again.
            apply(upsert(
                "shop",
                "s-1",
                serde_json::json!({"given": "Anne", "family": "Leigh", "mail": "ann@x.org"}),
            ));
            apply(Command::UnmergeSourceRecords {
                left: RecordKey::new("crm", "c-1"),
                right: RecordKey::new("shop", "s-1"),
            });
            let reader = engine.reader();
            let placement = |source: &str, id: &str| {
                reader
                    .source_record_placement(&workspace, &RecordKey::new(source, id))
                    .expect("placed")
                    .profile_id
            };
            let ids = (placement("crm", "c-1"), placement("shop", "s-1"));
            drop(reader);
            engine.shutdown();
            ids
        };
        assert_ne!(
            profile_id, shop_profile_id,
            "the un-merge split the profile"
        );
        let view = |id: ProfileId| {
            let args = GetArgs {
                workspace: "acme".into(),
                id: Some(id.to_string()),
                user_id: None,
                anonymous_id: None,
                email: None,
                events: 0,
                view_360: true,
            };
            let backend = cairn_store_sqlite::open(&config.data_dir).expect("store");
            from_store(
                &config,
                backend,
                &workspace,
                &Key::Id(id.to_string()),
                &args,
            )
            .expect("view")
        };
        let output = view(profile_id);
        assert_eq!(output["identity_configured"], true);
        assert_eq!(output["source_records"].as_array().map(Vec::len), Some(1));
        assert_eq!(output["source_records"][0]["fields"]["first"], "Ann");
        assert_eq!(output["reconciled"]["fields"]["first_name"]["value"], "Ann");
        assert_eq!(output["traits"]["firstName"], "Ann");
        assert_eq!(output["traits"]["lastName"], "Lee");
        let shop = view(shop_profile_id);
        assert_eq!(shop["source_records"].as_array().map(Vec::len), Some(1));
        assert_eq!(shop["source_records"][0]["id"], "s-1");
        assert_eq!(shop["traits"]["lastName"], "Leigh");
    }
}
