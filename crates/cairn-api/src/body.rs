//! Reading request bodies: content type, gzip, size limit, UTF-8; tracking payloads, journey and
//! audience documents (JSON or YAML), and small JSON command bodies.

use crate::error::ApiError;
use axum::body::Body;
use axum::http::{header, HeaderMap};
use cairn_core::segment::MAX_REQUEST_BYTES;
use cairn_journey::Format;
use cairn_model::ErrorCode;
use serde::de::DeserializeOwned;
use std::io::Read;

/// Largest journey or audience document (a journey has at most 10,000 steps).
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// Largest JSON command body (stop reason, enrollment data, a test-mode script).
pub const MAX_COMMAND_BYTES: usize = 1024 * 1024;

fn too_large() -> ApiError {
    ApiError::new(
        ErrorCode::BatchTooLarge,
        format!("the request body is larger than {MAX_REQUEST_BYTES} bytes"),
    )
}

fn document_too_large() -> ApiError {
    ApiError::new(
        ErrorCode::DocumentTooLarge,
        format!("the document is larger than {MAX_DOCUMENT_BYTES} bytes"),
    )
}

/// The media type of a request, lower-cased and without parameters; `None` when absent.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?;
    Some(
        value
            .to_str()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase(),
    )
}

fn is_json(media: &str) -> bool {
    media == "application/json" || media.ends_with("+json")
}

/// Checks the content type. JSON, and `text/plain` as analytics.js sends to avoid CORS pre-flights.
/// A missing content type is read as JSON (some server-side libraries omit it).
pub(crate) fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    match media_type(headers) {
        None => Ok(()),
        Some(media) if is_json(&media) || media == "text/plain" => Ok(()),
        Some(media) => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("Content-Type {media:?} is not supported; send application/json"),
        )),
    }
}

/// The syntax of a document body from its content type: JSON (`application/json`) or YAML
/// (`application/yaml`, `application/x-yaml`, `text/yaml`, `text/x-yaml`). Without a content type
/// the text decides (JSON starts with `{`).
pub fn document_format(media: Option<&str>, text: &str) -> Result<Format, ApiError> {
    match media {
        None | Some("") => Ok(Format::sniff(text)),
        Some(media) if is_json(media) => Ok(Format::Json),
        Some("application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml") => {
            Ok(Format::Yaml)
        }
        Some(media) => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "Content-Type {media:?} is not supported for documents; send application/json or application/yaml"
            ),
        )),
    }
}

/// Reads the body, decompressing gzip, within [`MAX_REQUEST_BYTES`]; returns it as UTF-8 text.
pub(crate) async fn read_text(headers: &HeaderMap, body: Body) -> Result<String, ApiError> {
    read_limited(headers, body, MAX_REQUEST_BYTES, too_large).await
}

/// Reads a journey or audience document: its text and its syntax.
pub(crate) async fn read_document(
    headers: &HeaderMap,
    body: Body,
) -> Result<(String, Format), ApiError> {
    let media = media_type(headers);
    // Refuse a wrong content type before reading the body.
    document_format(media.as_deref(), "")?;
    let text = read_limited(headers, body, MAX_DOCUMENT_BYTES, document_too_large).await?;
    let format = document_format(media.as_deref(), &text)?;
    Ok((text, format))
}

/// Reads an identity ruleset: TOML (`application/toml`, `text/toml`, or no content type) or JSON
/// (`application/json`), as in the `identity_rules` file.
pub(crate) async fn read_ruleset(
    headers: &HeaderMap,
    body: Body,
) -> Result<(String, cairn_identity::DocumentFormat), ApiError> {
    use cairn_identity::DocumentFormat;
    let format = match media_type(headers).as_deref() {
        None | Some("" | "application/toml" | "text/toml" | "text/plain") => DocumentFormat::Toml,
        Some(media) if is_json(media) => DocumentFormat::Json,
        Some(media) => {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!("Content-Type {media:?} is not supported for rulesets; send application/toml or application/json"),
            ))
        }
    };
    let text = read_limited(headers, body, MAX_DOCUMENT_BYTES, document_too_large).await?;
    Ok((text, format))
}

/// Reads a small JSON body into `T`; an empty body reads as `{}` (every field optional).
pub(crate) async fn read_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    if let Some(media) = media_type(headers) {
        if !is_json(&media) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!("Content-Type {media:?} is not supported; send application/json"),
            ));
        }
    }
    let text = read_limited(headers, body, MAX_COMMAND_BYTES, || {
        ApiError::new(
            ErrorCode::DocumentTooLarge,
            format!("the request body is larger than {MAX_COMMAND_BYTES} bytes"),
        )
    })
    .await?;
    parse_json_body(&text)
}

/// Parses a JSON command body: bad syntax is `invalid_json`, a wrong shape `invalid_body`.
pub fn parse_json_body<T: DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    let text = if text.trim().is_empty() { "{}" } else { text };
    serde_json::from_str(text).map_err(|error| {
        let code = match error.classify() {
            serde_json::error::Category::Data => ErrorCode::InvalidBody,
            _ => ErrorCode::InvalidJson,
        };
        ApiError::new(code, error.to_string())
    })
}

async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    too_large: impl Fn() -> ApiError,
) -> Result<String, ApiError> {
    let raw = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    let encoding = headers.get(header::CONTENT_ENCODING).map(|value| {
        value
            .to_str()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    });
    let bytes = match encoding.as_deref() {
        None | Some("") | Some("identity") => raw.to_vec(),
        Some("gzip") | Some("x-gzip") => gunzip(&raw, limit).map_err(|error| {
            if error.code == ErrorCode::UnsupportedEncoding {
                error
            } else {
                too_large()
            }
        })?,
        Some(other) => {
            return Err(ApiError::new(
                ErrorCode::UnsupportedEncoding,
                format!("Content-Encoding {other:?} is not supported; send gzip or identity"),
            ))
        }
    };
    String::from_utf8(bytes).map_err(|error| {
        ApiError::new(
            ErrorCode::InvalidUtf8,
            format!(
                "the body is not UTF-8 (byte {})",
                error.utf8_error().valid_up_to()
            ),
        )
    })
}

fn gunzip(compressed: &[u8], limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(compressed)
        .take(limit as u64 + 1)
        .read_to_end(&mut decoded)
        .map_err(|error| {
            ApiError::new(
                ErrorCode::UnsupportedEncoding,
                format!("the gzip body is corrupt: {error}"),
            )
        })?;
    if decoded.len() > limit {
        return Err(too_large());
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_json_or_yaml_by_content_type_and_sniffed_without_one() {
        let cases = [
            (Some("application/json"), "id: x", Some(Format::Json)),
            (Some("application/vnd.cairn+json"), "", Some(Format::Json)),
            (Some("application/yaml"), "{}", Some(Format::Yaml)),
            (Some("application/x-yaml"), "", Some(Format::Yaml)),
            (Some("text/yaml"), "", Some(Format::Yaml)),
            (None, "  {\"id\": 1}", Some(Format::Json)),
            (None, "id: x", Some(Format::Yaml)),
            (Some("text/plain"), "id: x", None),
            (Some("application/x-www-form-urlencoded"), "", None),
        ];
        for (media, text, expected) in cases {
            let got = document_format(media, text);
            match expected {
                Some(format) => assert_eq!(got.ok(), Some(format), "{media:?}"),
                None => assert_eq!(
                    got.err().map(|error| error.code),
                    Some(ErrorCode::UnsupportedMediaType),
                    "{media:?}"
                ),
            }
        }
    }

    #[test]
    fn json_bodies_tell_syntax_from_shape_and_read_empty_as_an_empty_object() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        struct Reason {
            #[allow(dead_code)]
            reason: Option<String>,
        }
        assert!(parse_json_body::<Reason>("").is_ok());
        assert!(parse_json_body::<Reason>("{\"reason\": \"over\"}").is_ok());
        let code = |text: &str| {
            parse_json_body::<Reason>(text)
                .err()
                .map(|error| error.code)
        };
        assert_eq!(code("{\"reason\": "), Some(ErrorCode::InvalidJson));
        assert_eq!(code("{\"reason\": 7}"), Some(ErrorCode::InvalidBody));
        assert_eq!(code("{\"other\": 1}"), Some(ErrorCode::InvalidBody));
    }
}
