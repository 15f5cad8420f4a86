//! Reading journey and audience documents from JSON or YAML, with positions in every error.
//!
//! Errors carry the line and column the parser reports and the path of the field being read
//! (`steps[2].timeout`), so a user of a large document finds the mistake at once.

use crate::document::{AudienceDocument, JourneyDocument};
use serde::de::DeserializeOwned;
use std::path::Path;

/// The two document syntaxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

impl Format {
    /// The format named by a file's extension (`.json`, `.yaml`, `.yml`); `None` for anything else.
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            _ => None,
        }
    }

    /// Guesses the format from the text: JSON starts with `{`, anything else is read as YAML.
    pub fn sniff(text: &str) -> Format {
        if text.trim_start().starts_with('{') {
            Format::Json
        } else {
            Format::Yaml
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Yaml => "yaml",
        }
    }
}

/// A document that could not be read: bad syntax or a field of the wrong shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{format} line {line}, column {column}{}: {message}", path_suffix(.path))]
pub struct ParseError {
    /// `json` or `yaml`.
    pub format: &'static str,
    /// One-based line (0 when the parser gave no position).
    pub line: usize,
    /// One-based column (0 when the parser gave no position).
    pub column: usize,
    /// The path of the field being read, e.g. `steps[2].timeout` (empty at the top level).
    pub path: String,
    /// What was wrong.
    pub message: String,
}

fn path_suffix(path: &str) -> String {
    if path.is_empty() || path == "." {
        String::new()
    } else {
        format!(" at {path}")
    }
}

/// Reads a journey document.
pub fn parse_journey(text: &str, format: Format) -> Result<JourneyDocument, ParseError> {
    parse_document(text, format)
}

/// Reads an audience document.
pub fn parse_audience(text: &str, format: Format) -> Result<AudienceDocument, ParseError> {
    parse_document(text, format)
}

/// Reads any document type with positioned errors.
pub fn parse_document<T: DeserializeOwned>(text: &str, format: Format) -> Result<T, ParseError> {
    match format {
        Format::Json => {
            let mut deserializer = serde_json::Deserializer::from_str(text);
            let value: T = serde_path_to_error::deserialize(&mut deserializer)
                .map_err(|error| json_error(error.path().to_string(), error.into_inner()))?;
            deserializer
                .end()
                .map_err(|error| json_error(String::new(), error))?;
            Ok(value)
        }
        Format::Yaml => {
            // One-key maps (`entry: {event: ...}`) for externally tagged enums, as in JSON, instead of
            // YAML tags (`entry: !event`).
            let mut track = serde_path_to_error::Track::new();
            let deserializer = serde_path_to_error::Deserializer::new(
                serde_norway::Deserializer::from_str(text),
                &mut track,
            );
            let result: Result<T, serde_norway::Error> =
                serde_norway::with::singleton_map_recursive::deserialize(deserializer);
            result.map_err(|error| yaml_error(track.path().to_string(), error))
        }
    }
}

fn json_error(path: String, error: serde_json::Error) -> ParseError {
    ParseError {
        format: Format::Json.name(),
        line: error.line(),
        column: error.column(),
        path: clean_path(path),
        message: strip_position(&error.to_string()),
    }
}

fn yaml_error(path: String, error: serde_norway::Error) -> ParseError {
    let (line, column) = error
        .location()
        .map(|location| (location.line(), location.column()))
        .unwrap_or((0, 0));
    let path = clean_path(path);
    let message = strip_position(&error.to_string());
    // serde_norway starts its messages with the path, which is kept in its own field.
    let message = match message.strip_prefix(&format!("{path}: ")) {
        Some(rest) if !path.is_empty() => rest.to_owned(),
        _ => message,
    };
    ParseError {
        format: Format::Yaml.name(),
        line,
        column,
        path,
        message,
    }
}

fn clean_path(path: String) -> String {
    if path == "." {
        String::new()
    } else {
        path
    }
}

/// Both parsers append " at line L column C" to their messages; the position is kept in fields instead.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}
