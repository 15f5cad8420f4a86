//! Reading configuration documents (TOML or JSON) with positions in every error.
//!
//! Validation happens inside `Deserialize` implementations (regexes compile, field names resolve,
//! thresholds are in range), so both `toml` and `serde_json` attach the line and column of the
//! offending value to the error. A document is parsed whole before anything uses it: nothing is ever
//! partially applied.

use crate::error::{IdentityError, Result};
use serde::de::DeserializeOwned;

/// The syntax of a configuration document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentFormat {
    Toml,
    Json,
}

impl DocumentFormat {
    /// The format implied by a file name (`.json` is JSON, anything else TOML).
    pub fn from_path(path: &std::path::Path) -> DocumentFormat {
        match path.extension().and_then(|extension| extension.to_str()) {
            Some(extension) if extension.eq_ignore_ascii_case("json") => DocumentFormat::Json,
            _ => DocumentFormat::Toml,
        }
    }
}

/// Parses `text` as `T`; `origin` names the document in errors (a file path or `request body`).
pub fn parse_document<T: DeserializeOwned>(
    text: &str,
    format: DocumentFormat,
    origin: &str,
) -> Result<T> {
    match format {
        DocumentFormat::Toml => toml::from_str::<T>(text).map_err(|error| {
            let (line, column) = error
                .span()
                .map(|span| line_and_column(text, span.start))
                .unwrap_or((1, 1));
            IdentityError::Config {
                origin: origin.to_string(),
                line,
                column,
                message: error.message().trim().to_string(),
            }
        }),
        DocumentFormat::Json => serde_json::from_str::<T>(text).map_err(|error| {
            let message = error.to_string();
            let message = match message.rfind(" at line ") {
                Some(position) => message[..position].to_string(),
                None => message,
            };
            IdentityError::Config {
                origin: origin.to_string(),
                line: error.line().max(1),
                column: error.column().max(1),
                message,
            }
        }),
    }
}

/// 1-based line and column of a byte offset.
pub fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.chars().count(), |newline| {
            before[newline + 1..].chars().count()
        })
        + 1;
    (line, column)
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_and_column(text, 0), (1, 1));
        assert_eq!(line_and_column(text, 6), (2, 1));
        assert_eq!(line_and_column(text, 8), (2, 3));
        assert_eq!(line_and_column(text, 1000), (3, 1));
    }
}
