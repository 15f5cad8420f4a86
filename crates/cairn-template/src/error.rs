//! The crate's one error type, and the positioned issues publish-time validation reports.

use cairn_model::ErrorCode;
use serde::Serialize;
use thiserror::Error;

/// One problem found while validating a template, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateIssue {
    /// The locale variant (`en`, `fr-CA`); empty for document-level issues.
    pub locale: String,
    /// The part (`subject`, `html`, `mjml`, `text`, `title`, `body`, `json`); empty for document-level issues.
    pub part: String,
    /// 1-based line in the part's source, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for TemplateIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.locale.is_empty() {
            write!(f, "{}/{}", self.locale, self.part)?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
                if let Some(column) = self.column {
                    write!(f, ":{column}")?;
                }
            }
            f.write_str(": ")?;
        }
        f.write_str(&self.message)
    }
}

/// Errors of validation and rendering.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// Publish-time validation found problems (all of them are listed).
    #[error("invalid template: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<TemplateIssue>),
    /// Rendering for a given profile failed (a value is missing or has the wrong type).
    #[error("cannot render {part}: {message}")]
    Render {
        part: String,
        line: Option<usize>,
        message: String,
    },
    /// A version or locale was asked for that does not exist.
    #[error("{0}")]
    NotFound(String),
}

impl TemplateError {
    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            TemplateError::Invalid(_) => ErrorCode::InvalidTemplate,
            TemplateError::Render { .. } => ErrorCode::TemplateRenderFailed,
            TemplateError::NotFound(_) => ErrorCode::InvalidTemplate,
        }
    }

    /// The issues of an [`TemplateError::Invalid`] error (empty otherwise).
    pub fn issues(&self) -> &[TemplateIssue] {
        match self {
            TemplateError::Invalid(issues) => issues,
            _ => &[],
        }
    }
}

/// The 1-based line and column of byte `offset` in `source`.
pub(crate) fn line_and_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |tail| tail.chars().count())
        + 1;
    (line, column)
}
