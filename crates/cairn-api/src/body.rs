//! Reading a tracking request body: content type, gzip, size limit, UTF-8.

use crate::error::ApiError;
use axum::body::Body;
use axum::http::{header, HeaderMap};
use cairn_core::segment::MAX_REQUEST_BYTES;
use cairn_model::ErrorCode;
use std::io::Read;

fn too_large() -> ApiError {
    ApiError::new(
        ErrorCode::BatchTooLarge,
        format!("the request body is larger than {MAX_REQUEST_BYTES} bytes"),
    )
}

/// Checks the content type. JSON, and `text/plain` as analytics.js sends to avoid CORS pre-flights.
/// A missing content type is read as JSON (some server-side libraries omit it).
pub(crate) fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let media = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media == "application/json" || media == "text/plain" || media.ends_with("+json") {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("Content-Type {media:?} is not supported; send application/json"),
        ))
    }
}

/// Reads the body, decompressing gzip, within [`MAX_REQUEST_BYTES`]; returns it as UTF-8 text.
pub(crate) async fn read_text(headers: &HeaderMap, body: Body) -> Result<String, ApiError> {
    let raw = axum::body::to_bytes(body, MAX_REQUEST_BYTES)
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
        Some("gzip") | Some("x-gzip") => gunzip(&raw)?,
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

fn gunzip(compressed: &[u8]) -> Result<Vec<u8>, ApiError> {
    let mut decoded = Vec::new();
    let limit = MAX_REQUEST_BYTES as u64 + 1;
    flate2::read::GzDecoder::new(compressed)
        .take(limit)
        .read_to_end(&mut decoded)
        .map_err(|error| {
            ApiError::new(
                ErrorCode::UnsupportedEncoding,
                format!("the gzip body is corrupt: {error}"),
            )
        })?;
    if decoded.len() > MAX_REQUEST_BYTES {
        return Err(too_large());
    }
    Ok(decoded)
}
