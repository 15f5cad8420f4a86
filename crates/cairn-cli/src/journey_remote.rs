//! `cairn journey push|publish|pause|resume|stop|archive|list|show|stats|enroll|trace`: journeys on
//! the running server, through the management API ([`crate::api_client`]).
//!
//! Data (the server's JSON answer) goes to stdout; what happened, warnings and errors go to stderr.
//! A refused request exits like every CLI error: `error[code]: message`, 2 for bad input (unknown
//! journey, invalid document, refused transition), 1 otherwise (server unreachable).

use crate::api_client::{encode, ApiClient, ServerArgs};
use crate::cli_error::CliError;
use crate::config::Config;
use cairn_journey::Format;
use cairn_model::ErrorCode;
use clap::{ArgGroup, Args};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The journey document (`.json`, `.yaml` or `.yml`); its `id` names the journey.
    pub file: PathBuf,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// The journey id.
    pub id: String,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// The journey id.
    pub id: String,
    /// Why the journey stops (kept with it; every enrollment ends as `stopped`).
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Also list archived journeys.
    #[arg(long)]
    pub include_archived: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Exactly one way of naming a profile.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("profile").required(true).multiple(false)))]
pub struct ProfileArgs {
    /// The profile's id.
    #[arg(long, group = "profile")]
    pub profile_id: Option<String>,
    /// The profile's user id.
    #[arg(long, group = "profile")]
    pub user_id: Option<String>,
    /// The profile's anonymous id.
    #[arg(long, group = "profile")]
    pub anonymous_id: Option<String>,
    /// The profile's email address.
    #[arg(long, group = "profile")]
    pub email: Option<String>,
}

impl ProfileArgs {
    /// The profile key as the enroll body names it: `("user_id", "u1")`.
    fn key(&self) -> (&'static str, &str) {
        match (
            &self.profile_id,
            &self.user_id,
            &self.anonymous_id,
            &self.email,
        ) {
            (Some(id), ..) => ("profile_id", id),
            (_, Some(user_id), ..) => ("user_id", user_id),
            (_, _, Some(anonymous_id), _) => ("anonymous_id", anonymous_id),
            (.., Some(email)) => ("email", email),
            // clap requires one of the group.
            _ => ("profile_id", ""),
        }
    }
}

#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// The journey id.
    pub id: String,
    #[command(flatten)]
    pub profile: ProfileArgs,
    /// The enrollment's data as JSON (`journey.trigger` in conditions and templates).
    #[arg(long)]
    pub data: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct TraceArgs {
    /// The journey id.
    #[arg(long)]
    pub journey: String,
    #[command(flatten)]
    pub profile: ProfileArgs,
    #[command(flatten)]
    pub server: ServerArgs,
}

fn print(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// The Content-Type a document file is sent with.
pub fn content_type(format: Format) -> &'static str {
    match format {
        Format::Json => "application/json",
        Format::Yaml => "application/yaml",
    }
}

/// Reads a document file: its text, its syntax and its id (parse errors are reported with their
/// position before anything is sent).
pub fn read_document(path: &Path, code: ErrorCode) -> anyhow::Result<(String, Format, String)> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        CliError::raise(
            ErrorCode::InvalidInput,
            format!("cannot read {}: {error}", path.display()),
        )
    })?;
    let format = Format::from_path(path).unwrap_or_else(|| Format::sniff(&text));
    #[derive(serde::Deserialize)]
    struct Named {
        id: String,
    }
    let named: Named = cairn_journey::parse::parse_document(&text, format)
        .map_err(|error| CliError::raise(code, format!("{}: {error}", path.display())))?;
    Ok((text, format, named.id))
}

fn journey_path(id: &str, action: &str) -> String {
    format!("/api/v1/journeys/{}{action}", encode(id))
}

/// Creates or replaces the draft; warns about its validation problems (publishing will refuse it).
pub fn push(config: &Config, args: PushArgs) -> anyhow::Result<()> {
    let (text, format, id) = read_document(&args.file, ErrorCode::InvalidJourney)?;
    let client = ApiClient::new(config, &args.server)?;
    let (status, body) = client.put_document(&journey_path(&id, ""), content_type(format), text)?;
    let problems = body["validation"]["errors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for problem in &problems {
        eprintln!(
            "warning{}",
            crate::api_client::problem_line(problem).trim_start_matches("error")
        );
    }
    let what = if status == 201 { "created" } else { "replaced" };
    if problems.is_empty() {
        eprintln!("journey {id:?}: draft {what}; it validates (`cairn journey publish {id}`)");
    } else {
        eprintln!(
            "journey {id:?}: draft {what} with {} problem(s); publishing refuses it until they are fixed",
            problems.len()
        );
    }
    print(&body)
}

/// `publish`, `pause`, `resume`, `archive`: one command, the journey after it.
pub fn transition(config: &Config, args: IdArgs, action: &str) -> anyhow::Result<()> {
    let client = ApiClient::new(config, &args.server)?;
    let body = client.post(&journey_path(&args.id, &format!("/{action}")), &json!({}))?;
    match body["published_version"].as_u64() {
        Some(version) => eprintln!("journey {:?}: version {version} published", args.id),
        None => eprintln!(
            "journey {:?}: {}",
            args.id,
            body["status"].as_str().unwrap_or("")
        ),
    }
    print(&body)
}

pub fn stop(config: &Config, args: StopArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(config, &args.server)?;
    let body = client.post(
        &journey_path(&args.id, "/stop"),
        &json!({"reason": args.reason}),
    )?;
    eprintln!("journey {:?}: stopped", args.id);
    print(&body)
}

pub fn list(config: &Config, args: ListArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(config, &args.server)?;
    let query = if args.include_archived {
        "?include_archived=true"
    } else {
        ""
    };
    print(&client.get(&format!("/api/v1/journeys{query}"))?)
}

pub fn show(config: &Config, args: IdArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(config, &args.server)?;
    print(&client.get(&journey_path(&args.id, ""))?)
}

pub fn stats(config: &Config, args: IdArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(config, &args.server)?;
    print(&client.get(&journey_path(&args.id, "/stats"))?)
}

pub fn enroll(config: &Config, args: EnrollArgs) -> anyhow::Result<()> {
    let mut body = json!({});
    let (key, value) = args.profile.key();
    body[key] = json!(value);
    if let Some(data) = &args.data {
        body["data"] = serde_json::from_str(data).map_err(|error| {
            CliError::raise(
                ErrorCode::InvalidInput,
                format!("--data is not JSON: {error}"),
            )
        })?;
    }
    let client = ApiClient::new(config, &args.server)?;
    let answer = client.post(&journey_path(&args.id, "/enroll"), &body)?;
    eprintln!(
        "{} enrolled in {:?} (enrollment {})",
        answer["profile_id"].as_str().unwrap_or(""),
        args.id,
        answer["enrollment"]
    );
    print(&answer)
}

/// The id of the profile the arguments name (looked up by identifier on the server).
fn profile_id(client: &ApiClient, profile: &ProfileArgs) -> anyhow::Result<String> {
    let (key, value) = profile.key();
    if key == "profile_id" {
        return Ok(value.to_string());
    }
    let found = client.get(&format!("/api/v1/profiles/lookup?{key}={}", encode(value)))?;
    Ok(found["id"].as_str().unwrap_or_default().to_string())
}

pub fn trace(config: &Config, args: TraceArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(config, &args.server)?;
    let id = profile_id(&client, &args.profile)?;
    print(&client.get(&format!(
        "/api/v1/profiles/{}/journeys/{}/trace",
        encode(&id),
        encode(&args.journey)
    ))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_file_is_read_with_its_id_and_syntax() {
        let dir = tempfile::tempdir().expect("tempdir");
        let yaml = dir.path().join("j.yaml");
        std::fs::write(&yaml, "id: j1\nname: J\n").expect("write");
        let (_, format, id) = read_document(&yaml, ErrorCode::InvalidJourney).expect("reads");
        assert_eq!((format, id.as_str()), (Format::Yaml, "j1"));
        let json = dir.path().join("j.txt");
        std::fs::write(&json, "{\"id\": \"j2\"}").expect("write");
        let (_, format, id) = read_document(&json, ErrorCode::InvalidJourney).expect("reads");
        assert_eq!((format, id.as_str()), (Format::Json, "j2"));
        assert_eq!(content_type(format), "application/json");
        std::fs::write(&yaml, "name: no id\n").expect("write");
        let error = read_document(&yaml, ErrorCode::InvalidAudience).expect_err("no id");
        assert!(error.to_string().contains("id"), "{error}");
    }
}
