//! `cairn profile get`: print a profile (JSON on stdout) straight from the data directory.

use crate::cli_error::CliError;
use crate::config::Config;
use cairn_model::{ErrorCode, Identifier, IdentifierKind, ProfileId, WorkspaceId};
use cairn_storage::ReadStore;
use clap::{Args, Subcommand};

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
}

pub fn run(config: &Config, command: ProfileCommand) -> anyhow::Result<()> {
    let ProfileCommand::Get(args) = command;
    let reader = cairn_store_sqlite::open_reader(&config.data_dir)?;
    let workspace = WorkspaceId::new(args.workspace);
    let profile = match (args.id, args.user_id, args.anonymous_id, args.email) {
        (Some(id), _, _, _) => reader.profile(&workspace, &ProfileId(id))?,
        (_, Some(user_id), _, _) => reader.profile_by_identifier(
            &workspace,
            &Identifier::new(IdentifierKind::UserId, user_id),
        )?,
        (_, _, Some(anonymous_id), _) => reader.profile_by_identifier(
            &workspace,
            &Identifier::new(IdentifierKind::AnonymousId, anonymous_id),
        )?,
        (_, _, _, Some(email)) => {
            reader.profile_by_identifier(&workspace, &Identifier::email(&email))?
        }
        _ => {
            return Err(CliError::raise(
                ErrorCode::InvalidInput,
                "give one of --id, --user-id, --anonymous-id or --email",
            ))
        }
    };
    let profile = profile.ok_or_else(|| {
        CliError::raise(
            ErrorCode::ProfileNotFound,
            "no such profile in this workspace",
        )
    })?;
    let mut output = serde_json::to_value(&profile)?;
    if args.events > 0 {
        let events = reader.events(&workspace, &profile.id, None, args.events)?;
        output["events"] = serde_json::to_value(events)?;
    }
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(())
}
