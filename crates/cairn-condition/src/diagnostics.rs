//! Diagnostics: every problem found in a condition's source, with a byte span, a line and column, a stable
//! machine code and a lowercase message.
//!
//! The codes are part of Cairn's contract (journey validation and the API return them inside a validation
//! error); [`codes`] lists every one, and `docs/conditions.md` explains each.

use std::fmt;
use std::ops::Range;

/// One problem in a condition's source.
///
/// `span` is a byte range into the source; `line` and `column` are 1-based and point at the span's start,
/// the column counted in characters (not bytes).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub code: &'static str,
    pub message: String,
    pub span: Range<usize>,
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{}:{}: {} [{}]",
            self.line, self.column, self.message, self.code
        )
    }
}

/// The stable diagnostic codes.
pub mod codes {
    /// A character that starts no token (for example `#` or `@`).
    pub const INVALID_CHARACTER: &str = "invalid_character";
    /// A string literal without its closing quote.
    pub const UNTERMINATED_STRING: &str = "unterminated_string";
    /// An unknown escape sequence inside a string literal.
    pub const INVALID_ESCAPE: &str = "invalid_escape";
    /// A malformed number (`1.`, `1e`, `12abc`).
    pub const INVALID_NUMBER: &str = "invalid_number";
    /// A malformed duration (`1.5h`, `7days`).
    pub const INVALID_DURATION: &str = "invalid_duration";
    /// A token where it makes no sense (also `&&`, `||`, `!` and `=`, with a hint).
    pub const UNEXPECTED_TOKEN: &str = "unexpected_token";
    /// The source ends in the middle of an expression (or is empty).
    pub const UNEXPECTED_END: &str = "unexpected_end";
    /// `a < b < c`: comparisons do not chain.
    pub const CHAINED_COMPARISON: &str = "chained_comparison";
    /// A bare name that is neither a root (`profile`, `event`, `journey`) nor a function call.
    pub const UNKNOWN_NAME: &str = "unknown_name";
    /// A bracket key that is not a string or whole-number literal.
    pub const INVALID_PATH: &str = "invalid_path";
    /// Nesting deeper than the parser allows, or a source longer than allowed.
    pub const TOO_COMPLEX: &str = "too_complex";
    /// A profile attribute the schema does not know.
    pub const UNKNOWN_ATTRIBUTE: &str = "unknown_attribute";
    /// An `event.*` or `journey.*` field the schema does not know.
    pub const UNKNOWN_FIELD: &str = "unknown_field";
    /// An event name the schema does not know (in an aggregate or an `event.name` comparison).
    pub const UNKNOWN_EVENT: &str = "unknown_event";
    /// A root this kind of condition cannot read (for example `event.*` in an audience).
    pub const ROOT_NOT_ALLOWED: &str = "root_not_allowed";
    /// A function that does not exist.
    pub const UNKNOWN_FUNCTION: &str = "unknown_function";
    /// A function called with the wrong number of arguments.
    pub const WRONG_ARITY: &str = "wrong_arity";
    /// Operands or arguments of types that do not fit.
    pub const TYPE_MISMATCH: &str = "type_mismatch";
    /// An argument that must be a literal (a regex, an event name, a window) is not.
    pub const EXPECTED_LITERAL: &str = "expected_literal";
    /// A regular expression that does not compile.
    pub const INVALID_REGEX: &str = "invalid_regex";
    /// A time-zone literal that is not an IANA name.
    pub const INVALID_TIMEZONE: &str = "invalid_timezone";
    /// A date or timestamp literal that is not ISO-8601.
    pub const INVALID_DATE: &str = "invalid_date";
    /// An aggregate window that is not a positive duration.
    pub const INVALID_WINDOW: &str = "invalid_window";
    /// A condition whose value is not a boolean.
    pub const NOT_BOOLEAN: &str = "not_boolean";

    /// Every code, for documentation and tests.
    pub const ALL: &[&str] = &[
        INVALID_CHARACTER,
        UNTERMINATED_STRING,
        INVALID_ESCAPE,
        INVALID_NUMBER,
        INVALID_DURATION,
        UNEXPECTED_TOKEN,
        UNEXPECTED_END,
        CHAINED_COMPARISON,
        UNKNOWN_NAME,
        INVALID_PATH,
        TOO_COMPLEX,
        UNKNOWN_ATTRIBUTE,
        UNKNOWN_FIELD,
        UNKNOWN_EVENT,
        ROOT_NOT_ALLOWED,
        UNKNOWN_FUNCTION,
        WRONG_ARITY,
        TYPE_MISMATCH,
        EXPECTED_LITERAL,
        INVALID_REGEX,
        INVALID_TIMEZONE,
        INVALID_DATE,
        INVALID_WINDOW,
        NOT_BOOLEAN,
    ];
}

/// Collects diagnostics for one source, computing line and column from byte offsets.
pub(crate) struct DiagnosticSink<'source> {
    source: &'source str,
    diagnostics: Vec<Diagnostic>,
}

impl<'source> DiagnosticSink<'source> {
    pub(crate) fn new(source: &'source str) -> Self {
        DiagnosticSink {
            source,
            diagnostics: Vec::new(),
        }
    }

    pub(crate) fn report(
        &mut self,
        code: &'static str,
        span: Range<usize>,
        message: impl Into<String>,
    ) {
        let (line, column) = line_and_column(self.source, span.start);
        self.diagnostics.push(Diagnostic {
            code,
            message: message.into(),
            span,
            line,
            column,
        });
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.diagnostics.is_empty()
    }

    pub(crate) fn into_diagnostics(mut self) -> Vec<Diagnostic> {
        self.diagnostics
            .sort_by_key(|diagnostic| (diagnostic.span.start, diagnostic.span.end));
        self.diagnostics.dedup();
        self.diagnostics
    }
}

/// 1-based line and character column of a byte offset (clamped to the source and to a char boundary).
pub fn line_and_column(source: &str, byte_offset: usize) -> (u32, u32) {
    let mut offset = byte_offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let column = before[line_start..].chars().count() + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
    )
}

/// Renders diagnostics for a person: each with its line of source and a caret under the span.
pub fn render(source: &str, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for diagnostic in diagnostics {
        let line_text = source
            .lines()
            .nth(diagnostic.line as usize - 1)
            .unwrap_or("");
        let caret_count = source.get(diagnostic.span.clone()).map_or(1, |text| {
            text.lines().next().unwrap_or("").chars().count().max(1)
        });
        out.push_str(&format!(
            "error[{}]: {}\n  --> {}:{}\n   | {}\n   | {}{}\n",
            diagnostic.code,
            diagnostic.message,
            diagnostic.line,
            diagnostic.column,
            line_text,
            " ".repeat(diagnostic.column as usize - 1),
            "^".repeat(caret_count)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters_on_the_right_line() {
        let source = "a == \"é\"\n  and b";
        assert_eq!(line_and_column(source, 0), (1, 1));
        assert_eq!(line_and_column(source, 6), (1, 7));
        // `é` is two bytes: the closing quote is byte 7, column 8.
        assert_eq!(line_and_column(source, 8), (1, 8));
        assert_eq!(line_and_column(source, 12), (2, 3));
        assert_eq!(line_and_column(source, 1000), (2, 8));
    }
}
