//! File I/O for batch runs (the crate's only I/O): reading source files (CSV, JSONL, Parquet) into
//! canonical records through their source's mapping, and writing `source,source_id,unified_id`
//! rows. Every problem is an error naming the file and line (or Parquet row); a file is read whole
//! before anything is resolved, so nothing is ever partially applied.

use crate::record::{CanonicalRecord, RecordKey};
use crate::source::{RawFields, SourceCatalog};
use crate::{IdentityError, Result, UnifiedId};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// One `--source NAME=FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInput {
    pub source: String,
    pub path: PathBuf,
}

impl SourceInput {
    /// Parses `NAME=FILE`.
    pub fn parse(text: &str) -> std::result::Result<SourceInput, String> {
        let (source, path) = text
            .split_once('=')
            .ok_or_else(|| format!("expected NAME=FILE, got `{text}`"))?;
        if source.trim().is_empty() || path.trim().is_empty() {
            return Err(format!("expected NAME=FILE, got `{text}`"));
        }
        Ok(SourceInput {
            source: source.trim().to_string(),
            path: PathBuf::from(path.trim()),
        })
    }
}

/// The formats a source file can have (by extension: `.csv`, `.jsonl`/`.ndjson`, `.parquet`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    Csv,
    Jsonl,
    Parquet,
}

impl InputFormat {
    pub fn of(path: &Path) -> Result<InputFormat> {
        let extension = path
            .extension()
            .and_then(|extension| extension.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        match extension.as_str() {
            "csv" => Ok(InputFormat::Csv),
            "jsonl" | "ndjson" | "json" => Ok(InputFormat::Jsonl),
            "parquet" => Ok(InputFormat::Parquet),
            _ => Err(IdentityError::Input {
                origin: path.display().to_string(),
                line: 0,
                message: "unknown file type (expected .csv, .jsonl or .parquet)".to_string(),
            }),
        }
    }
}

fn io_error(path: &Path, source: std::io::Error) -> IdentityError {
    IdentityError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Reads every record of one source file. `on_record` is called after each record (for progress).
pub fn read_source(
    catalog: &SourceCatalog,
    input: &SourceInput,
    on_record: &mut dyn FnMut(u64),
) -> Result<Vec<CanonicalRecord>> {
    let mapping = catalog
        .get(&input.source)
        .ok_or_else(|| IdentityError::UnknownSource(input.source.clone()))?;
    let origin = input.path.display().to_string();
    let input_error = |line: u64, message: String| IdentityError::Input {
        origin: origin.clone(),
        line,
        message,
    };
    let mut records = Vec::new();
    let mut first_line: HashMap<RecordKey, u64> = HashMap::new();
    let mut accept = |line: u64, fields: &RawFields| -> Result<()> {
        let record = mapping
            .map_record(&input.source, fields)
            .map_err(|message| input_error(line, message))?;
        if let Some(previous) = first_line.insert(record.key.clone(), line) {
            return Err(input_error(
                line,
                format!(
                    "record id `{}` appears again (first on line {previous})",
                    record.key.source_id
                ),
            ));
        }
        records.push(record);
        on_record(records.len() as u64);
        Ok(())
    };
    match InputFormat::of(&input.path)? {
        InputFormat::Csv => {
            let mut reader = csv::ReaderBuilder::new()
                .flexible(false)
                .from_path(&input.path)
                .map_err(|error| input_error(1, error.to_string()))?;
            let headers: Vec<String> = reader
                .headers()
                .map_err(|error| input_error(1, csv_message(&error)))?
                .iter()
                .map(|header| header.trim().to_string())
                .collect();
            mapping
                .check_columns(&headers)
                .map_err(|message| input_error(1, message))?;
            let mut row = csv::StringRecord::new();
            loop {
                let more = reader.read_record(&mut row).map_err(|error| {
                    let line = error
                        .position()
                        .map_or(reader.position().line(), |position| position.line());
                    input_error(line, csv_message(&error))
                })?;
                if !more {
                    break;
                }
                let line = row.position().map_or(0, |position| position.line());
                let fields: RawFields = headers
                    .iter()
                    .zip(row.iter())
                    .map(|(header, value)| (header.clone(), vec![value.to_string()]))
                    .collect();
                accept(line, &fields)?;
            }
        }
        InputFormat::Jsonl => {
            let file =
                std::fs::File::open(&input.path).map_err(|error| io_error(&input.path, error))?;
            for (number, line) in BufReader::new(file).lines().enumerate() {
                let line_number = number as u64 + 1;
                let line = line.map_err(|error| io_error(&input.path, error))?;
                if line.trim().is_empty() {
                    continue;
                }
                let value: serde_json::Value = serde_json::from_str(&line)
                    .map_err(|error| input_error(line_number, format!("invalid JSON: {error}")))?;
                let serde_json::Value::Object(object) = value else {
                    return Err(input_error(
                        line_number,
                        "expected a JSON object".to_string(),
                    ));
                };
                let mut fields = RawFields::new();
                flatten_json("", &serde_json::Value::Object(object), &mut fields);
                accept(line_number, &fields)?;
            }
        }
        InputFormat::Parquet => {
            use parquet::file::reader::{FileReader, SerializedFileReader};
            let file =
                std::fs::File::open(&input.path).map_err(|error| io_error(&input.path, error))?;
            let reader = SerializedFileReader::new(file)
                .map_err(|error| input_error(0, format!("not a readable Parquet file: {error}")))?;
            let columns: Vec<String> = reader
                .metadata()
                .file_metadata()
                .schema_descr()
                .columns()
                .iter()
                .map(|column| column.path().string())
                .collect();
            mapping
                .check_columns(&columns)
                .map_err(|message| input_error(0, message))?;
            let rows = reader
                .get_row_iter(None)
                .map_err(|error| input_error(0, error.to_string()))?;
            for (number, row) in rows.enumerate() {
                let row_number = number as u64 + 1;
                let row = row.map_err(|error| input_error(row_number, error.to_string()))?;
                let mut fields = RawFields::new();
                for (name, field) in row.get_column_iter() {
                    let text = match field {
                        parquet::record::Field::Null => continue,
                        parquet::record::Field::Str(text) => text.clone(),
                        other => other.to_string(),
                    };
                    fields.insert(name.clone(), vec![text]);
                }
                accept(row_number, &fields)?;
            }
        }
    }
    Ok(records)
}

fn csv_message(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("the row has {len} fields, the header has {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => "the row is not valid UTF-8".to_string(),
        _ => error.to_string(),
    }
}

/// The raw fields of one JSON object record (a JSONL line, or a record sent to the server's API):
/// nested objects flattened with dotted names, arrays giving several values, `null` ignored.
pub fn raw_fields_of_json(object: &serde_json::Map<String, serde_json::Value>) -> RawFields {
    let mut fields = RawFields::new();
    for (name, value) in object {
        flatten_json(name, value, &mut fields);
    }
    fields
}

/// Flattens nested objects with dotted names; arrays of scalars give several values.
fn flatten_json(prefix: &str, value: &serde_json::Value, fields: &mut RawFields) {
    use serde_json::Value;
    match value {
        Value::Object(object) => {
            for (name, inner) in object {
                let path = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}.{name}")
                };
                flatten_json(&path, inner, fields);
            }
        }
        Value::Array(items) => {
            for item in items {
                flatten_json(prefix, item, fields);
            }
        }
        Value::Null => {}
        Value::String(text) => fields
            .entry(prefix.to_string())
            .or_default()
            .push(text.clone()),
        other => fields
            .entry(prefix.to_string())
            .or_default()
            .push(other.to_string()),
    }
}

/// Reads several sources (in order); the first error stops everything.
pub fn read_sources(
    catalog: &SourceCatalog,
    inputs: &[SourceInput],
    on_record: &mut dyn FnMut(u64),
) -> Result<Vec<CanonicalRecord>> {
    let mut all = Vec::new();
    let mut seen_sources = std::collections::BTreeSet::new();
    for input in inputs {
        if !seen_sources.insert(input.source.clone()) {
            return Err(IdentityError::Input {
                origin: input.path.display().to_string(),
                line: 0,
                message: format!("source `{}` is given twice", input.source),
            });
        }
        let offset = all.len() as u64;
        let records = read_source(catalog, input, &mut |count| on_record(offset + count))?;
        all.extend(records);
    }
    Ok(all)
}

/// Writes `source,source_id,unified_id` rows (CSV with a header) to `path`, or stdout for `-`.
pub fn write_assignments(path: &Path, assignments: &[(RecordKey, UnifiedId)]) -> Result<()> {
    let sink: Box<dyn Write> = if path.as_os_str() == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::fs::File::create(path).map_err(|error| io_error(path, error))?)
    };
    let mut writer = csv::Writer::from_writer(std::io::BufWriter::new(sink));
    let write_error = |error: csv::Error| IdentityError::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(error.to_string()),
    };
    writer
        .write_record(["source", "source_id", "unified_id"])
        .map_err(write_error)?;
    for (key, id) in assignments {
        writer
            .write_record([key.source.as_str(), key.source_id.as_str(), id.as_str()])
            .map_err(write_error)?;
    }
    writer.flush().map_err(|error| io_error(path, error))?;
    Ok(())
}
