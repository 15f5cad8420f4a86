//! `cairn audience push|list|show|members`: audiences on the running server, through the management
//! API. Data to stdout (JSON), what happened to stderr.

use crate::api_client::{encode, ApiClient, ServerArgs};
use crate::config::Config;
use crate::journey_remote::{content_type, read_document};
use cairn_model::ErrorCode;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum AudienceCommand {
    /// Create or replace an audience from a file (JSON or YAML: id, name, condition).
    Push(PushArgs),
    /// List the audiences with their member counts.
    List(ServerArgs),
    /// One audience with its member count.
    Show(IdArgs),
    /// Members of an audience (profile ids), one page.
    Members(MembersArgs),
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The audience document (`.json`, `.yaml` or `.yml`).
    file: PathBuf,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// The audience id.
    id: String,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct MembersArgs {
    /// The audience id.
    id: String,
    /// Page size (at most 1000).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Members to skip (the `next_offset` of the previous page).
    #[arg(long, default_value_t = 0)]
    offset: usize,
    #[command(flatten)]
    server: ServerArgs,
}

fn print(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub fn run(config: &Config, command: AudienceCommand) -> anyhow::Result<()> {
    match command {
        AudienceCommand::Push(args) => {
            let (text, format, id) = read_document(&args.file, ErrorCode::InvalidAudience)?;
            let client = ApiClient::new(config, &args.server)?;
            let (status, body) = client.put_document(
                &format!("/api/v1/audiences/{}", encode(&id)),
                content_type(format),
                text,
            )?;
            eprintln!(
                "audience {id:?} {} ({} members)",
                if status == 201 { "created" } else { "replaced" },
                body["members"]
            );
            print(&body)
        }
        AudienceCommand::List(server) => {
            print(&ApiClient::new(config, &server)?.get("/api/v1/audiences")?)
        }
        AudienceCommand::Show(args) => print(
            &ApiClient::new(config, &args.server)?
                .get(&format!("/api/v1/audiences/{}", encode(&args.id)))?,
        ),
        AudienceCommand::Members(args) => {
            print(&ApiClient::new(config, &args.server)?.get(&format!(
                "/api/v1/audiences/{}/members?limit={}&offset={}",
                encode(&args.id),
                args.limit,
                args.offset
            ))?)
        }
    }
}
