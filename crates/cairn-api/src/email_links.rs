//! The URLs signed links in emails point to, served without auth (the signed token is the credential):
//! - `GET /t/o/{token}`: the open pixel, a 1×1 GIF; records `Email Opened` (once per message);
//! - `GET /t/c/{token}`: `302` to the target signed inside the token; records `Email Clicked` (once per
//!   message and link);
//! - `GET /u/{token}`: a page with a confirmation form; `POST /u/{token}` with
//!   `List-Unsubscribe=One-Click` (RFC 8058, and what the form posts) records `Email Unsubscribed`,
//!   which opts the profile out of the message's subscription group, else of email (`scope=all`: a
//!   global unsubscribe).
//!
//! A malformed or forged token, or one of another kind than the route, is `404 invalid_tracking_link`
//! and records nothing; the click route never redirects anywhere a token does not name.

use crate::error::ApiError;
use crate::feedback_intake::{event_message, record};
use crate::unsubscribe_page;
use crate::ApiState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use cairn_delivery::{FeedbackEvent, TrackingClaims};
use cairn_model::{ErrorCode, NormalizedMessage, ProfileId, WorkspaceId};
use serde_json::Value;

/// The smallest transparent GIF (1×1).
pub const PIXEL_GIF: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/t/o/{token}", get(open))
        .route("/t/c/{token}", get(click))
        .route("/u/{token}", get(unsubscribe_page).post(unsubscribe))
}

fn invalid_link(message: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidTrackingLink, message)
}

/// The verified claims of `token`, or `invalid_tracking_link`.
fn verify(state: &ApiState, token: &str) -> Result<TrackingClaims, ApiError> {
    state
        .delivery
        .signer()?
        .verify(token)
        .map_err(|_| invalid_link("this link is not valid"))
}

/// The workspace and profile a verified token names, if the profile exists.
fn owner(state: &ApiState, claims: &TrackingClaims) -> Option<(WorkspaceId, ProfileId)> {
    let profile = ProfileId::parse(&claims.ids().profile_id)?;
    let workspace = state.reader.workspace_of(&profile)?;
    Some((workspace, profile))
}

/// The event a verified token stands for, now.
fn feedback(state: &ApiState, claims: &TrackingClaims) -> FeedbackEvent {
    FeedbackEvent::from_tracking(claims, state.clock.now().timestamp_millis())
}

/// Records an open or a click; a failure is logged, never shown (the pixel and the redirect work
/// whatever happens to the event).
async fn record_quietly(state: &ApiState, claims: &TrackingClaims, occurrence: &str) {
    let Some((workspace, profile)) = owner(state, claims) else {
        tracing::debug!(message_id = %claims.ids().message_id, "a tracking link of an unknown profile");
        return;
    };
    let message = event_message(profile, &feedback(state, claims), occurrence, &[]);
    if let Err(error) = record(state, workspace, vec![message]).await {
        tracing::warn!(code = %error.code, message = %error.message, "a tracking event was not recorded");
    }
}

async fn open(
    State(state): State<ApiState>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let claims = verify(&state, &token)?;
    if !matches!(claims, TrackingClaims::Open { .. }) {
        return Err(invalid_link("this is not an open-tracking link"));
    }
    record_quietly(&state, &claims, "").await;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/gif")),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-store, max-age=0"),
            ),
        ],
        PIXEL_GIF,
    )
        .into_response())
}

/// Whether a signed click target may be redirected to (http or https only).
fn redirectable(target: &str) -> Option<HeaderValue> {
    let parsed = url::Url::parse(target).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }
    HeaderValue::from_str(parsed.as_str()).ok()
}

async fn click(
    State(state): State<ApiState>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let claims = verify(&state, &token)?;
    let TrackingClaims::Click {
        link_index, url, ..
    } = &claims
    else {
        return Err(invalid_link("this is not a click-tracking link"));
    };
    let location = redirectable(url)
        .ok_or_else(|| invalid_link("this link's target is not an http(s) URL"))?;
    record_quietly(&state, &claims, &format!("l{link_index}")).await;
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
    )
        .into_response())
}

/// The verified claims of an unsubscribe token, and its subscription group.
fn unsubscribe_claims(
    state: &ApiState,
    token: &str,
) -> Result<(TrackingClaims, Option<u32>), ApiError> {
    let claims = verify(state, token)?;
    match claims {
        TrackingClaims::Unsubscribe { group, .. } => Ok((claims, group)),
        _ => Err(invalid_link("this is not an unsubscribe link")),
    }
}

async fn unsubscribe_page(
    State(state): State<ApiState>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let (_, group) = unsubscribe_claims(&state, &token)?;
    let action = format!("{}/u/{token}", state.delivery.signer()?.base_url());
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Html(unsubscribe_page::confirmation(&action, group)),
    )
        .into_response())
}

/// The `Email Unsubscribed` event of an unsubscribe token (`everything`: a global unsubscribe).
fn unsubscribe_event(
    state: &ApiState,
    claims: &TrackingClaims,
    profile: ProfileId,
    everything: bool,
) -> NormalizedMessage {
    let feedback = feedback(state, claims);
    if everything {
        event_message(profile, &feedback, "all", &[("global", Value::Bool(true))])
    } else {
        event_message(profile, &feedback, "", &[])
    }
}

async fn unsubscribe(
    State(state): State<ApiState>,
    Path(token): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (claims, _) = unsubscribe_claims(&state, &token)?;
    let everything = unsubscribe_page::one_click_request(&body).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidBody,
            "post `List-Unsubscribe=One-Click` (form-encoded) to unsubscribe",
        )
    })?;
    let (workspace, profile) = owner(&state, &claims).ok_or_else(crate::management::not_found)?;
    let event = unsubscribe_event(&state, &claims, profile, everything);
    // Consent matters: unlike opens and clicks, a failure to record is the answer.
    record(&state, workspace, vec![event]).await?;
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Html(unsubscribe_page::done(everything)),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_targets_are_redirected_to() {
        assert!(redirectable("https://shop.example.com/p?a=1&b=2").is_some());
        assert!(redirectable("http://shop.example.com").is_some());
        for bad in [
            "javascript:alert(1)",
            "data:text/html,x",
            "//evil.example.com",
            "shop",
        ] {
            assert!(redirectable(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_pixel_is_a_gif() {
        assert!(PIXEL_GIF.starts_with(b"GIF89a"));
        assert_eq!(PIXEL_GIF.last(), Some(&0x3b));
    }
}
