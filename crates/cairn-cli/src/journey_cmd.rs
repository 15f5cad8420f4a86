//! `cairn journey …`: journey documents offline (`validate`, `test`, `schema`: no server, no data
//! directory) and journeys on the running server (`push`, `publish`, `pause`, `resume`, `stop`,
//! `archive`, `list`, `show`, `stats`, `enroll`, `trace`: see [`crate::journey_remote`]).
//!
//! `validate` prints one `error[code] step=ID: message (at /json/pointer)` line per problem on stderr and
//! exits 2; `test` runs the journey for a scripted customer under a simulated clock and prints the path
//! and every effect (JSON lines or a table) on stdout.

use crate::cli_error::CliError;
use crate::config::Config;
use crate::journey_remote;
use anyhow::Context as _;
use cairn_journey::simulate::{earliest_timestamp, parse_script, DEFAULT_START_MS};
use cairn_journey::{
    parse_journey, simulate, validate, Catalog, CatalogDocument, CompiledJourney, Format,
    JourneyDocument, Simulation,
};
use cairn_model::ErrorCode;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum JourneyCommand {
    /// Check a journey document (JSON or YAML); errors on stderr, exit 2 when invalid.
    Validate(ValidateArgs),
    /// Run a journey for a scripted customer under a simulated clock and print the path and effects.
    Test(TestArgs),
    /// Print the JSON Schema of journey documents.
    Schema,
    /// Create a journey on the server, or replace its draft, from a file.
    Push(journey_remote::PushArgs),
    /// Publish the journey's draft as its next version (refused with every error if it does not
    /// validate).
    Publish(journey_remote::IdArgs),
    /// Pause: no new entries (customers already in are held or continue, as the journey says).
    Pause(journey_remote::IdArgs),
    /// Resume a paused journey.
    Resume(journey_remote::IdArgs),
    /// Stop: every enrollment ends with the reason; no more entries.
    Stop(journey_remote::StopArgs),
    /// Archive a stopped (or never published) journey.
    Archive(journey_remote::IdArgs),
    /// List the server's journeys.
    List(journey_remote::ListArgs),
    /// One journey: status, draft, versions.
    Show(journey_remote::IdArgs),
    /// Per-version, per-step counters and goal conversion.
    Stats(journey_remote::IdArgs),
    /// Enroll a profile in a published journey.
    Enroll(journey_remote::EnrollArgs),
    /// Why a customer took their path through a journey: every decision with its data.
    Trace(journey_remote::TraceArgs),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The journey document (`.json`, `.yaml` or `.yml`).
    file: PathBuf,
    /// A catalog of known attributes, events, templates and audiences (JSON or YAML); without it,
    /// every name is accepted.
    #[arg(long)]
    catalog: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The journey document (`.json`, `.yaml` or `.yml`).
    file: PathBuf,
    /// The customer's events, one JSON object a line (`event`, `properties`, `timestamp` or `after`).
    #[arg(long)]
    events: Option<PathBuf>,
    /// The customer's profile attributes (a JSON object).
    #[arg(long)]
    profile: Option<PathBuf>,
    /// How long to simulate from the start (`30d`).
    #[arg(long, default_value = "30d")]
    until: String,
    /// Start of the simulated clock (RFC 3339); default: the earliest event timestamp.
    #[arg(long)]
    start: Option<String>,
    /// The customer's profile id (decides random splits).
    #[arg(long, default_value = "prof_test")]
    profile_id: String,
    /// A catalog of known names (see `validate`).
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// Output: JSON lines or a readable table.
    #[arg(long, value_enum, default_value_t = OutputFormat::Jsonl)]
    format: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Jsonl,
    Table,
}

pub fn run(config: &Config, command: JourneyCommand) -> anyhow::Result<()> {
    match command {
        JourneyCommand::Validate(args) => {
            let journey = load(&args.file, args.catalog.as_deref())?;
            let summary = serde_json::json!({
                "id": &*journey.id,
                "name": journey.name,
                "steps": journey.steps.len(),
                "event_names": journey.index.event_names.iter().map(|name| &**name).collect::<Vec<_>>(),
            });
            println!("{summary}");
            Ok(())
        }
        JourneyCommand::Test(args) => test(args),
        JourneyCommand::Schema => {
            println!("{}", cairn_journey::document::journey_schema_json());
            Ok(())
        }
        JourneyCommand::Push(args) => journey_remote::push(config, args),
        JourneyCommand::Publish(args) => journey_remote::transition(config, args, "publish"),
        JourneyCommand::Pause(args) => journey_remote::transition(config, args, "pause"),
        JourneyCommand::Resume(args) => journey_remote::transition(config, args, "resume"),
        JourneyCommand::Stop(args) => journey_remote::stop(config, args),
        JourneyCommand::Archive(args) => journey_remote::transition(config, args, "archive"),
        JourneyCommand::List(args) => journey_remote::list(config, args),
        JourneyCommand::Show(args) => journey_remote::show(config, args),
        JourneyCommand::Stats(args) => journey_remote::stats(config, args),
        JourneyCommand::Enroll(args) => journey_remote::enroll(config, args),
        JourneyCommand::Trace(args) => journey_remote::trace(config, args),
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).map_err(|error| {
        CliError::raise(
            ErrorCode::InvalidInput,
            format!("cannot read {}: {error}", path.display()),
        )
    })
}

fn format_of(path: &Path, text: &str) -> Format {
    Format::from_path(path).unwrap_or_else(|| Format::sniff(text))
}

fn load_catalog(path: Option<&Path>) -> anyhow::Result<Catalog> {
    let Some(path) = path else {
        return Ok(Catalog::open());
    };
    let text = read(path)?;
    let document: CatalogDocument =
        cairn_journey::parse::parse_document(&text, format_of(path, &text)).map_err(|error| {
            CliError::raise(
                ErrorCode::InvalidInput,
                format!("catalog {}: {error}", path.display()),
            )
        })?;
    Ok(Catalog::from_document(&document))
}

/// Parses and validates a journey, printing every validation error on stderr.
fn load(path: &Path, catalog: Option<&Path>) -> anyhow::Result<Arc<CompiledJourney>> {
    let catalog = load_catalog(catalog)?;
    let text = read(path)?;
    let document: JourneyDocument =
        parse_journey(&text, format_of(path, &text)).map_err(|error| {
            CliError::raise(
                ErrorCode::InvalidJourney,
                format!("{}: {error}", path.display()),
            )
        })?;
    match validate(&document, &catalog) {
        Ok(journey) => Ok(Arc::new(journey)),
        Err(errors) => {
            for error in &errors {
                eprintln!("{error}");
            }
            Err(CliError::raise(
                ErrorCode::InvalidJourney,
                format!(
                    "{}: {} validation error{}",
                    path.display(),
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" }
                ),
            ))
        }
    }
}

fn invalid(message: String) -> anyhow::Error {
    CliError::raise(ErrorCode::InvalidInput, message)
}

fn test(args: TestArgs) -> anyhow::Result<()> {
    let journey = load(&args.file, args.catalog.as_deref())?;
    let script_text = match &args.events {
        Some(path) => read(path)?,
        None => String::new(),
    };
    let start_ms = match &args.start {
        Some(text) => chrono::DateTime::parse_from_rfc3339(text)
            .map_err(|error| invalid(format!("--start `{text}`: {error}")))?
            .timestamp_millis(),
        None => earliest_timestamp(&script_text).unwrap_or(DEFAULT_START_MS),
    };
    let until_ms = start_ms.saturating_add(
        cairn_journey::duration::parse_duration_ms(&args.until)
            .map_err(|message| invalid(format!("--until: {message}")))?,
    );
    let script = parse_script(&script_text, start_ms).map_err(|error| {
        invalid(format!(
            "{}: {error}",
            args.events
                .as_deref()
                .map_or_else(String::new, |path| path.display().to_string())
        ))
    })?;
    let profile: Map<String, Value> = match &args.profile {
        Some(path) => serde_json::from_str(&read(path)?)
            .map_err(|error| invalid(format!("{}: {error}", path.display())))
            .context("the profile must be a JSON object")?,
        None => Map::new(),
    };
    let report = simulate(
        journey.clone(),
        Simulation {
            profile_id: args.profile_id,
            profile,
            script,
            start_ms,
            until_ms,
            trace_values: true,
        },
    );
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    let timeline = report.timeline(&journey);
    match args.format {
        OutputFormat::Jsonl => {
            for line in timeline {
                println!("{line}");
            }
        }
        OutputFormat::Table => print_table(&timeline),
    }
    Ok(())
}

fn print_table(timeline: &[Value]) {
    println!(
        "{:<25} {:<15} {:>4} {:<22} what",
        "at", "kind", "enr", "step"
    );
    for line in timeline {
        let text = |key: &str| line.get(key).and_then(Value::as_str).unwrap_or("");
        let enrollment = line
            .get("enrollment")
            .and_then(Value::as_u64)
            .map(|id| id.to_string())
            .unwrap_or_default();
        let what = match text("kind") {
            "input" => text("input").to_owned(),
            "decision" => text("explanation").to_owned(),
            "message" => format!(
                "{} `{}` message {}",
                text("channel"),
                text("template"),
                text("message_id")
            ),
            "profile_update" => line
                .get("changes")
                .map(Value::to_string)
                .unwrap_or_default(),
            "ended" => format!("{} ({})", text("reason"), text("detail")),
            _ => String::new(),
        };
        println!(
            "{:<25} {:<15} {:>4} {:<22} {what}",
            text("at"),
            text("kind"),
            enrollment,
            text("step")
        );
    }
}
