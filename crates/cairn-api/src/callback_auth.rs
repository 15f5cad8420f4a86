//! How provider callbacks prove where they come from.
//!
//! - Bounce and complaint webhooks (generic, SendGrid, SES via SNS) present the configured shared
//!   secret as the password of HTTP Basic auth (`https://cairn:<secret>@host/hooks/…`, which SendGrid
//!   and SNS both support) or as `Authorization: Bearer <secret>`.
//! - Twilio signs each callback: `X-Twilio-Signature` over the public URL it called and the form
//!   parameters, under the account's auth token.
//!
//! Both comparisons are constant-time. A missing or wrong credential is `403 invalid_signature`; a
//! route whose credential is not configured is `404 delivery_not_configured`, never open.

use crate::error::ApiError;
use crate::feedback_intake::not_configured;
use axum::http::{header, HeaderMap, Uri};
use base64::Engine as _;
use cairn_delivery::feedback::twilio::verify_twilio_signature;
use cairn_model::ErrorCode;

/// The header Twilio signs its requests with.
pub const TWILIO_SIGNATURE_HEADER: &str = "x-twilio-signature";

fn refused(message: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidSignature, message)
}

/// Equality that takes the same time wherever the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// The credential of an `Authorization` header: a Basic password or a Bearer token.
fn presented_secret(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    if let Some(token) = value.strip_prefix("Bearer ") {
        return Some(token.trim().to_string());
    }
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':')
        .map(|(_, password)| password.to_string())
}

/// Checks a bounce or complaint webhook's shared secret.
pub fn check_secret(headers: &HeaderMap, configured: Option<&str>) -> Result<(), ApiError> {
    let configured = configured
        .ok_or_else(|| not_configured("provider callbacks need [delivery.callbacks] secret"))?;
    let presented = presented_secret(headers).ok_or_else(|| {
        refused("send the callback secret as the Basic auth password or as a Bearer token")
    })?;
    if constant_time_eq(presented.as_bytes(), configured.as_bytes()) {
        Ok(())
    } else {
        Err(refused("the callback secret does not match"))
    }
}

/// Checks `X-Twilio-Signature` of a form POST to `uri` (path and query as received) under the
/// public URL Twilio was given.
pub fn check_twilio(
    headers: &HeaderMap,
    uri: &Uri,
    body: &[u8],
    auth_token: Option<&str>,
    public_url: Option<&str>,
) -> Result<(), ApiError> {
    let (Some(auth_token), Some(public_url)) = (auth_token, public_url) else {
        return Err(not_configured(
            "Twilio callbacks need a Twilio auth token and a public URL in [delivery]",
        ));
    };
    let signature = headers
        .get(TWILIO_SIGNATURE_HEADER)
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| refused("no X-Twilio-Signature header"))?;
    let path = uri
        .path_and_query()
        .map_or(uri.path(), |path| path.as_str());
    let url = format!("{}{path}", public_url.trim_end_matches('/'));
    verify_twilio_signature(auth_token, &url, body, signature)
        .map_err(|_| refused("X-Twilio-Signature does not match"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use cairn_delivery::feedback::twilio::twilio_signature;

    fn with_auth(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn the_secret_is_accepted_as_basic_password_or_bearer_token() {
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("cairn:s3cret")
        );
        assert!(check_secret(&with_auth(&basic), Some("s3cret")).is_ok());
        assert!(check_secret(&with_auth("Bearer s3cret"), Some("s3cret")).is_ok());
        let wrong = check_secret(&with_auth("Bearer s3cre"), Some("s3cret")).unwrap_err();
        assert_eq!(wrong.code, ErrorCode::InvalidSignature);
        let missing = check_secret(&HeaderMap::new(), Some("s3cret")).unwrap_err();
        assert_eq!(missing.code, ErrorCode::InvalidSignature);
        let unconfigured = check_secret(&with_auth("Bearer x"), None).unwrap_err();
        assert_eq!(unconfigured.code, ErrorCode::DeliveryNotConfigured);
    }

    #[test]
    fn twilio_signatures_cover_the_public_url_and_the_form() {
        let body = b"MessageSid=SM1&MessageStatus=delivered";
        let uri: Uri = "/hooks/twilio/status?cairn_message_id=m1".parse().unwrap();
        let url = "https://cairn.example.com/hooks/twilio/status?cairn_message_id=m1";
        let mut headers = HeaderMap::new();
        headers.insert(
            TWILIO_SIGNATURE_HEADER,
            HeaderValue::from_str(&twilio_signature("tok", url, body)).unwrap(),
        );
        let public = Some("https://cairn.example.com/");
        assert!(check_twilio(&headers, &uri, body, Some("tok"), public).is_ok());
        assert!(check_twilio(&headers, &uri, b"MessageSid=SM2", Some("tok"), public).is_err());
        assert!(check_twilio(&headers, &uri, body, Some("other"), public).is_err());
        let other: Uri = "/hooks/twilio/status?cairn_message_id=m2".parse().unwrap();
        assert!(check_twilio(&headers, &other, body, Some("tok"), public).is_err());
        assert_eq!(
            check_twilio(&headers, &uri, body, None, public)
                .unwrap_err()
                .code,
            ErrorCode::DeliveryNotConfigured
        );
    }
}
