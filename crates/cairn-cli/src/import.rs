//! `cairn import`: bulk-load JSONL or CSV files of events or profiles into the data directory.
//!
//! Every row goes through the API's validation. Progress is shown on stderr; the summary (counts and
//! rejects by code) is printed to stdout as JSON, and the first rejects with their line numbers to
//! stderr. The server must be stopped: the import takes the data directory's lock.

use crate::cli_error::CliError;
use crate::config::Config;
use cairn_core::records::{csv_row, to_message, RecordKind};
use cairn_core::segment::{normalize_object, Envelope, Rejection};
use cairn_engine::EngineError;
use cairn_model::{ErrorCode, NormalizedMessage, WorkspaceId};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

/// Rows per group commit.
const CHUNK: usize = 2_000;
/// Rejects printed with their line numbers.
const SHOWN_REJECTS: usize = 20;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file to import (`.jsonl`/`.ndjson` or `.csv`).
    file: PathBuf,
    /// Workspace to import into.
    #[arg(long)]
    workspace: String,
    /// What the rows are.
    #[arg(long, value_enum, default_value_t = Kind::Events)]
    kind: Kind,
    /// File format; by default taken from the extension.
    #[arg(long, value_enum)]
    format: Option<FileFormat>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kind {
    Events,
    Profiles,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FileFormat {
    Jsonl,
    Csv,
}

#[derive(Default)]
struct Summary {
    rows: usize,
    accepted: usize,
    duplicates: usize,
    rejected: BTreeMap<&'static str, usize>,
    shown: usize,
}

impl Summary {
    fn reject(&mut self, line: usize, rejection: &Rejection) {
        *self.rejected.entry(rejection.code.as_str()).or_default() += 1;
        if self.shown < SHOWN_REJECTS {
            self.shown += 1;
            eprintln!("line {line}: {}: {}", rejection.code, rejection.message);
        }
    }
}

pub fn run(config: &Config, args: ImportArgs) -> anyhow::Result<()> {
    let format = match args.format {
        Some(format) => format,
        None => match args
            .file
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("csv") => FileFormat::Csv,
            Some("jsonl" | "ndjson" | "json") => FileFormat::Jsonl,
            _ => {
                return Err(CliError::raise(
                    ErrorCode::InvalidInput,
                    "cannot tell the format from the extension; pass --format",
                ))
            }
        },
    };
    let kind = match args.kind {
        Kind::Events => RecordKind::Events,
        Kind::Profiles => RecordKind::Profiles,
    };
    let file = File::open(&args.file).map_err(|error| {
        CliError::raise(
            ErrorCode::InvalidInput,
            format!("cannot open {}: {error}", args.file.display()),
        )
    })?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let progress = ProgressBar::new(size);
    progress.set_style(
        ProgressStyle::with_template(
            "{spinner} {bytes}/{total_bytes} [{bar:40}] {per_sec} eta {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let reader = progress.wrap_read(file);

    let engine = crate::server::start_engine(config)?;
    let ingestor = engine.ingestor();
    let clock = engine.clock();
    let workspace = WorkspaceId::new(args.workspace);
    let mut summary = Summary::default();
    let mut chunk: Vec<NormalizedMessage> = Vec::with_capacity(CHUNK);
    let flush = |chunk: &mut Vec<NormalizedMessage>, summary: &mut Summary| -> anyhow::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        let messages = std::mem::take(chunk);
        let receipt = loop {
            match ingestor.submit_blocking(workspace.clone(), messages.clone()) {
                // The applier is behind the log: let it catch up, then send the chunk again.
                Err(EngineError::Overloaded) => {
                    engine.wait_until_applied(std::time::Duration::from_secs(1));
                }
                Err(error) => {
                    return Err(CliError::raise(ErrorCode::StorageError, error.to_string()))
                }
                Ok(receipt) => break receipt,
            }
        };
        summary.accepted += receipt.accepted;
        summary.duplicates += receipt.duplicates;
        Ok(())
    };
    for_each_row(reader, format, |line, row| {
        summary.rows += 1;
        let result = row.and_then(|row| {
            normalize_object(to_message(kind, row), &Envelope::default(), clock.now())
        });
        match result {
            Ok(message) => chunk.push(message),
            Err(rejection) => summary.reject(line, &rejection),
        }
        if chunk.len() >= CHUNK {
            flush(&mut chunk, &mut summary)?;
            progress.set_message(format!("{} stored", summary.accepted));
        }
        Ok(())
    })?;
    flush(&mut chunk, &mut summary)?;
    progress.finish_and_clear();
    engine.shutdown();
    let rejected: usize = summary.rejected.values().sum();
    eprintln!(
        "imported {} of {} rows ({} duplicates, {} rejected)",
        summary.accepted, summary.rows, summary.duplicates, rejected
    );
    println!(
        "{}",
        json!({"rows": summary.rows, "accepted": summary.accepted, "duplicates": summary.duplicates,
               "rejected": rejected, "rejected_by_code": summary.rejected})
    );
    Ok(())
}

/// Calls `visit` with the 1-based line number and the parsed row (or why it could not be read).
fn for_each_row(
    reader: impl Read,
    format: FileFormat,
    mut visit: impl FnMut(usize, Result<Map<String, Value>, Rejection>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    match format {
        FileFormat::Jsonl => {
            for (index, line) in BufReader::new(reader).lines().enumerate() {
                let line = line.map_err(|error| {
                    CliError::raise(
                        ErrorCode::InvalidInput,
                        format!("line {}: cannot read: {error}", index + 1),
                    )
                })?;
                if line.trim().is_empty() {
                    continue;
                }
                let row = match serde_json::from_str::<Value>(&line) {
                    Ok(Value::Object(row)) => Ok(row),
                    Ok(_) => Err(Rejection::new(
                        ErrorCode::InvalidBody,
                        "each line must be a JSON object",
                    )),
                    Err(error) => Err(Rejection::new(
                        ErrorCode::InvalidJson,
                        format!("invalid JSON: {error}"),
                    )),
                };
                visit(index + 1, row)?;
            }
        }
        FileFormat::Csv => {
            let mut csv = csv::ReaderBuilder::new()
                .flexible(false)
                .from_reader(reader);
            let headers: Vec<String> = csv
                .headers()
                .map_err(|error| {
                    CliError::raise(
                        ErrorCode::InvalidInput,
                        format!("line 1: bad CSV header: {error}"),
                    )
                })?
                .iter()
                .map(str::to_string)
                .collect();
            let mut record = csv::StringRecord::new();
            loop {
                let line = csv.position().line() as usize;
                match csv.read_record(&mut record) {
                    Ok(false) => break,
                    Ok(true) => {
                        let cells: Vec<String> = record.iter().map(str::to_string).collect();
                        visit(line, Ok(csv_row(&headers, &cells)))?;
                    }
                    Err(error) => {
                        let line = error.position().map(|p| p.line() as usize).unwrap_or(line);
                        visit(
                            line,
                            Err(Rejection::new(
                                ErrorCode::InvalidBody,
                                format!("broken CSV row: {error}"),
                            )),
                        )?;
                        if !matches!(error.kind(), csv::ErrorKind::UnequalLengths { .. }) {
                            return Err(CliError::raise(
                                ErrorCode::InvalidInput,
                                format!("line {line}: cannot read CSV: {error}"),
                            ));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}
