//! Journey and audience documents at the API boundary: parsing with positioned errors, validation
//! errors as JSON, and the error answers both turn into.
//!
//! Every problem is one JSON object with a `code`, a `path` (a JSON pointer into the document) and a
//! `message`; validation problems add the `step` and, for conditions, the position inside the
//! condition; a document that cannot be read at all gets one problem with code `malformed_document`
//! and the `line` and `column` the parser stopped at.

use crate::error::ApiError;
use cairn_journey::{
    parse_audience, parse_journey, AudienceDocument, Format, JourneyDocument, ParseError,
    ValidationError,
};
use cairn_model::ErrorCode;
use serde_json::{json, Value};

/// The problem code of a document that is not valid JSON/YAML or has a field of the wrong shape.
pub const MALFORMED_DOCUMENT: &str = "malformed_document";

/// Which kind of document, for codes and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    Journey,
    Audience,
}

impl DocumentKind {
    fn code(self) -> ErrorCode {
        match self {
            DocumentKind::Journey => ErrorCode::InvalidJourney,
            DocumentKind::Audience => ErrorCode::InvalidAudience,
        }
    }

    fn name(self) -> &'static str {
        match self {
            DocumentKind::Journey => "journey",
            DocumentKind::Audience => "audience",
        }
    }
}

/// Turns a serde field path (`steps[2].branches[0].next`, `.` for the top) into a JSON pointer
/// (`/steps/2/branches/0/next`, empty for the top).
pub fn field_path_to_pointer(path: &str) -> String {
    let mut pointer = String::new();
    let mut segment = String::new();
    let flush = |segment: &mut String, pointer: &mut String| {
        if !segment.is_empty() {
            pointer.push('/');
            pointer.push_str(&segment.replace('~', "~0").replace('/', "~1"));
            segment.clear();
        }
    };
    for character in path.chars() {
        match character {
            '.' | '[' | ']' => flush(&mut segment, &mut pointer),
            other => segment.push(other),
        }
    }
    flush(&mut segment, &mut pointer);
    pointer
}

/// One problem for a document that could not be read.
pub fn parse_problem(error: &ParseError) -> Value {
    json!({
        "code": MALFORMED_DOCUMENT,
        "path": field_path_to_pointer(&error.path),
        "line": error.line,
        "column": error.column,
        "message": error.message,
    })
}

/// Validation problems as JSON objects.
pub fn validation_problems(errors: &[ValidationError]) -> Vec<Value> {
    errors
        .iter()
        .map(|error| serde_json::to_value(error).unwrap_or_default())
        .collect()
}

/// The error answer for a document that could not be read.
pub fn malformed(kind: DocumentKind, error: &ParseError) -> ApiError {
    ApiError::new(
        kind.code(),
        format!("the {} document cannot be read: {error}", kind.name()),
    )
    .with_errors(vec![parse_problem(error)])
}

/// The error answer for a document that failed validation (`errors` must not be empty).
pub fn invalid(kind: DocumentKind, errors: &[ValidationError]) -> ApiError {
    debug_assert!(!errors.is_empty(), "an invalid document has errors");
    let first = errors.first().map(ToString::to_string).unwrap_or_default();
    let message = match errors.len() {
        1 => format!("the {} does not validate: {first}", kind.name()),
        count => format!(
            "the {} does not validate ({count} errors; the first: {first})",
            kind.name()
        ),
    };
    ApiError::new(kind.code(), message).with_errors(validation_problems(errors))
}

/// An answer for a document whose id is not the one in the URL.
pub fn id_mismatch(kind: DocumentKind, in_path: &str, in_document: &str) -> ApiError {
    ApiError::new(
        kind.code(),
        format!(
            "the URL names {} {in_path:?} but the document's id is {in_document:?}",
            kind.name()
        ),
    )
    .with_errors(vec![json!({
        "code": "id_mismatch",
        "path": "/id",
        "message": format!("expected {in_path:?}"),
    })])
}

/// Reads a journey document.
pub fn read_journey(text: &str, format: Format) -> Result<JourneyDocument, ApiError> {
    parse_journey(text, format).map_err(|error| malformed(DocumentKind::Journey, &error))
}

/// Reads an audience document.
pub fn read_audience(text: &str, format: Format) -> Result<AudienceDocument, ApiError> {
    parse_audience(text, format).map_err(|error| malformed(DocumentKind::Audience, &error))
}

/// The validation errors that make a document unfit to be stored at all: its id, which names it in
/// URLs, must be valid. (Other problems are allowed in a draft and block only its publication.)
pub fn identity_errors(errors: &[ValidationError]) -> Vec<ValidationError> {
    errors
        .iter()
        .filter(|error| {
            error.code == cairn_journey::validate::codes::INVALID_ID && error.path == "/id"
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;

    #[test]
    fn field_paths_become_json_pointers() {
        let cases = [
            (".", ""),
            ("", ""),
            ("id", "/id"),
            ("steps[2].timeout", "/steps/2/timeout"),
            ("steps[0].branches[1].next", "/steps/0/branches/1/next"),
            ("steps[0].settings.a/b", "/steps/0/settings/a~1b"),
            ("steps[0].settings.x~y", "/steps/0/settings/x~0y"),
        ];
        for (path, pointer) in cases {
            assert_eq!(field_path_to_pointer(path), pointer, "{path}");
        }
    }

    #[test]
    fn a_malformed_document_is_one_problem_with_its_position() {
        let error = read_journey(
            "id: j\nname: J\nsteps:\n  - {id: a, type: teleport}\n",
            Format::Yaml,
        )
        .expect_err("malformed");
        assert_eq!(error.code, ErrorCode::InvalidJourney);
        let problems = error.errors.expect("problems");
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0]["code"], MALFORMED_DOCUMENT);
        assert_eq!(problems[0]["line"], 4);
        assert_eq!(problems[0]["path"], "/steps/0/type");
        assert!(error.message.contains("teleport"), "{}", error.message);
    }

    proptest::proptest! {
        /// Any body gives a document or one positioned problem, never a panic.
        #[test]
        fn any_body_reads_as_a_document_or_one_problem(text in "\\PC{0,200}", yaml in proptest::bool::ANY) {
            let format = if yaml { Format::Yaml } else { Format::Json };
            if let Err(error) = read_journey(&text, format) {
                proptest::prop_assert_eq!(error.code, ErrorCode::InvalidJourney);
                let problems = error.errors.unwrap_or_default();
                proptest::prop_assert_eq!(problems.len(), 1);
                proptest::prop_assert_eq!(&problems[0]["code"], MALFORMED_DOCUMENT);
                let pointer = problems[0]["path"].as_str().unwrap_or("?").to_string();
                proptest::prop_assert!(pointer.is_empty() || pointer.starts_with('/'));
            }
        }

        /// A field path built from keys and indexes becomes the pointer of the same segments.
        #[test]
        fn field_paths_and_pointers_have_the_same_segments(
            segments in proptest::collection::vec(proptest::prop_oneof![
                "[a-z_]{1,8}".prop_map(|key| (key.clone(), key)),
                (0usize..50).prop_map(|index| (format!("[{index}]"), index.to_string())),
            ], 0..6)
        ) {
            let mut path = String::new();
            for (written, _) in &segments {
                if !path.is_empty() && !written.starts_with('[') {
                    path.push('.');
                }
                path.push_str(written);
            }
            let expected: String = segments.iter().map(|(_, segment)| format!("/{segment}")).collect();
            proptest::prop_assert_eq!(field_path_to_pointer(&path), expected);
        }
    }

    #[test]
    fn an_invalid_audience_answers_with_its_own_code() {
        let error = read_audience("{\"id\": \"a\"}", Format::Json).expect_err("malformed");
        assert_eq!(error.code, ErrorCode::InvalidAudience);
    }
}
