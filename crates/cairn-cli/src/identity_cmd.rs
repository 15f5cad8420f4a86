//! `cairn identity`: identity resolution of whole source files without a server.
//!
//! - `cairn identity resolve --rules RULES --source NAME=FILE ... --out FILE` writes
//!   `source,source_id,unified_id` rows (CSV/JSONL/Parquet inputs; progress on stderr; a JSON
//!   summary on stderr with `--stats`).
//! - `cairn identity explain --rules RULES --source NAME=FILE ... SOURCE/ID SOURCE/ID` prints why two
//!   records are (or are not) one person, as JSON.
//! - `cairn identity diff --rules CURRENT --proposed NEW --source NAME=FILE ...` previews the
//!   profiles a rule change would merge or split (a dry run; nothing is written).

use crate::cli_error::CliError;
use cairn_identity::batch::{resolve_batch, BatchOutcome, Progress};
use cairn_identity::compiled::CompiledRuleset;
use cairn_identity::files::{read_sources, write_assignments, SourceInput};
use cairn_identity::{IdentityError, RecordKey, Ruleset};
use cairn_model::ErrorCode;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum IdentityCommand {
    /// Resolve source files into unified ids (`source,source_id,unified_id` rows).
    Resolve(ResolveArgs),
    /// Explain why two records are (or are not) one person.
    Explain(ExplainArgs),
    /// Preview the merges and splits a ruleset change would cause (dry run).
    Diff(DiffArgs),
}

#[derive(Debug, Args)]
pub struct InputArgs {
    /// The ruleset (TOML, or JSON by extension), with the sources' mappings.
    #[arg(long)]
    rules: PathBuf,
    /// A source file: NAME=FILE (.csv, .jsonl or .parquet); repeat for several sources.
    #[arg(long = "source", required = true, value_parser = parse_source_input)]
    sources: Vec<SourceInput>,
}

#[derive(Debug, Args)]
pub struct ResolveArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Where to write the rows (`-` for stdout).
    #[arg(long)]
    out: PathBuf,
    /// Print the run's figures as one JSON object on stderr.
    #[arg(long)]
    stats: bool,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    input: InputArgs,
    /// The first record, as SOURCE/ID.
    left: String,
    /// The second record, as SOURCE/ID.
    right: String,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    input: InputArgs,
    /// The proposed ruleset.
    #[arg(long)]
    proposed: PathBuf,
    /// Sample records shown per merge or split.
    #[arg(long, default_value_t = 5)]
    samples: usize,
}

fn parse_source_input(text: &str) -> Result<SourceInput, String> {
    SourceInput::parse(text)
}

pub fn run(command: IdentityCommand) -> anyhow::Result<()> {
    match command {
        IdentityCommand::Resolve(args) => resolve(args),
        IdentityCommand::Explain(args) => explain(args),
        IdentityCommand::Diff(args) => diff(args),
    }
}

/// Maps a library error to the shared error-code table.
fn raise(error: IdentityError) -> anyhow::Error {
    let code = ErrorCode::from_name(error.error_code_name()).unwrap_or(ErrorCode::Internal);
    CliError::raise(code, error.to_string())
}

fn load_ruleset(path: &Path) -> anyhow::Result<Ruleset> {
    Ruleset::from_file(path).map_err(raise)
}

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg:>20} {pos}/{len} [{bar:40}] {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Reads the sources and resolves them, with a progress bar on stderr.
fn run_batch(input: &InputArgs, ruleset: Ruleset) -> anyhow::Result<BatchOutcome> {
    let compiled = Arc::new(CompiledRuleset::new(ruleset).map_err(raise)?);
    let bar = progress_bar();
    bar.set_message("reading");
    let records = read_sources(&compiled.sources, &input.sources, &mut |count| {
        if count.is_multiple_of(1_000) {
            bar.set_position(count);
            bar.set_length(count);
        }
    })
    .map_err(raise)?;
    let outcome = resolve_batch(compiled, records, &|progress: Progress| {
        bar.set_message(progress.phase);
        bar.set_length(progress.total);
        bar.set_position(progress.done);
    })
    .map_err(raise)?;
    bar.finish_and_clear();
    Ok(outcome)
}

fn resolve(args: ResolveArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let ruleset = load_ruleset(&args.input.rules)?;
    let outcome = run_batch(&args.input, ruleset)?;
    write_assignments(&args.out, &outcome.resolver.assignments()).map_err(raise)?;
    let stats = &outcome.stats;
    if args.stats {
        let mut summary = serde_json::to_value(stats)?;
        summary["seconds_total"] = serde_json::json!(started.elapsed().as_secs_f64());
        summary["hubs_found"] = serde_json::to_value(outcome.resolver.hubs())?;
        eprintln!("{summary}");
    } else {
        eprintln!(
            "resolved {} records into {} profiles ({} links, {} refused by protection, {} hubs) in {:.2}s",
            stats.records,
            stats.resolver.profiles,
            stats.resolver.links,
            stats.resolver.refused_links,
            stats.resolver.hubs,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn parse_key(text: &str) -> anyhow::Result<RecordKey> {
    RecordKey::parse(text).ok_or_else(|| {
        CliError::raise(
            ErrorCode::InvalidInput,
            format!("expected SOURCE/ID, got `{text}`"),
        )
    })
}

fn explain(args: ExplainArgs) -> anyhow::Result<()> {
    let left = parse_key(&args.left)?;
    let right = parse_key(&args.right)?;
    let ruleset = load_ruleset(&args.input.rules)?;
    let outcome = run_batch(&args.input, ruleset)?;
    let explanation = outcome.resolver.explain(&left, &right).map_err(raise)?;
    println!("{}", serde_json::to_string_pretty(&explanation)?);
    Ok(())
}

fn diff(args: DiffArgs) -> anyhow::Result<()> {
    let current = load_ruleset(&args.input.rules)?;
    let proposed = load_ruleset(&args.proposed)?;
    let before = run_batch(&args.input, current)?;
    let after = run_batch(&args.input, proposed)?;
    let diff = cairn_identity::diff::diff_assignments(
        &before.resolver.assignments(),
        &after.resolver.assignments(),
        args.samples,
    );
    println!("{}", serde_json::to_string_pretty(&diff)?);
    Ok(())
}
