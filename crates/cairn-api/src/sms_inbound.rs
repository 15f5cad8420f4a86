//! Inbound SMS from Twilio ("a message comes in" webhook): the STOP / START / HELP keywords.
//!
//! `POST /hooks/twilio/inbound/{workspace}` (form-encoded, `X-Twilio-Signature` verified like the
//! status callbacks). The customer is every profile of the workspace whose `phone` trait is the
//! sender's number (digits compared, so `+1 415-555-0100` matches `+14155550100`). STOP and its
//! synonyms record `SMS Unsubscribed` (an SMS opt-out), START records `SMS Subscribed` (an opt-in);
//! the event's message id comes from Twilio's `MessageSid`, so a retried webhook is a duplicate. The
//! answer is TwiML: empty for STOP and START (Twilio's own opt-out handling sends the carrier-required
//! confirmation), a short help text for HELP, empty for any other message.

use crate::callback_auth::check_twilio;
use crate::error::ApiError;
use crate::feedback_intake::{named_event_message, record};
use crate::ApiState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use cairn_delivery::feedback::twilio::{parse_inbound, InboundSms};
use cairn_delivery::{Channel, ConsentChange, FeedbackEvent, FeedbackKind, SmsKeyword};
use cairn_model::{ErrorCode, WorkspaceId};
use serde_json::Value;

/// What HELP is answered with.
pub const HELP_TEXT: &str = "Reply STOP to unsubscribe, START to subscribe again.";

/// The digits of a phone number (what two spellings of one number share).
pub fn phone_digits(number: &str) -> String {
    number.chars().filter(char::is_ascii_digit).collect()
}

/// The TwiML answer to an inbound message.
pub fn twiml_answer(inbound: &InboundSms) -> String {
    match inbound.keyword {
        Some(SmsKeyword::Help) => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>{}</Message></Response>",
            html_escape::encode_text(HELP_TEXT)
        ),
        _ => "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>".to_string(),
    }
}

/// What an inbound keyword records: the event, its name (`SMS Unsubscribed` for STOP, `SMS Subscribed`
/// for START) and the keyword; `None` for HELP and ordinary messages.
pub fn keyword_event(
    inbound: &InboundSms,
    at_ms: i64,
) -> Option<(FeedbackEvent, &'static str, &'static str)> {
    let (name, keyword) = match inbound.consent_change()? {
        ConsentChange::OptOut { .. } => ("SMS Unsubscribed", "stop"),
        ConsentChange::OptIn { .. } => ("SMS Subscribed", "start"),
        _ => return None,
    };
    let event = FeedbackEvent {
        kind: Some(FeedbackKind::Unsubscribed),
        channel: Some(Channel::Sms),
        provider: "twilio",
        provider_message_id: inbound.provider_message_id.clone(),
        recipient: Some(inbound.from.clone()),
        occurred_at_ms: at_ms,
        ..FeedbackEvent::default()
    };
    Some((event, name, keyword))
}

pub(crate) async fn inbound(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    Path(workspace): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let settings = &state.delivery;
    check_twilio(
        &headers,
        &uri,
        &body,
        settings.twilio_auth_token.as_deref(),
        settings.public_url.as_deref(),
    )?;
    let inbound =
        parse_inbound(&body).map_err(|error| ApiError::new(error.code(), error.to_string()))?;
    let workspace = WorkspaceId::new(&workspace);
    let now_ms = state.clock.now().timestamp_millis();
    if let Some((feedback, name, keyword)) = keyword_event(&inbound, now_ms) {
        let sender = phone_digits(&inbound.from);
        let reader = state.reader.clone();
        let lookup = workspace.clone();
        let profiles = tokio::task::spawn_blocking(move || {
            reader.profiles_with_trait(&lookup, "phone", &|phone| {
                !sender.is_empty() && phone_digits(phone) == sender
            })
        })
        .await
        .map_err(|_| ApiError::new(ErrorCode::Internal, "a read task failed"))?;
        let occurrence = match &inbound.provider_message_id {
            Some(sid) => format!("twilio-{sid}"),
            None => format!("twilio-{}-{now_ms}", inbound.from),
        };
        let keyword = [("keyword", Value::String(keyword.to_string()))];
        let events = profiles
            .into_iter()
            .map(|profile| named_event_message(profile, name, &feedback, &occurrence, &keyword))
            .collect();
        record(&state, workspace, events).await?;
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/xml; charset=utf-8"),
        )],
        twiml_answer(&inbound),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sms(body: &str) -> InboundSms {
        parse_inbound(
            format!("From=%2B14155550100&To=%2B15005550006&MessageSid=SM9&Body={body}").as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn keywords_become_consent_events_and_twiml() {
        let (stop, name, keyword) = keyword_event(&sms("Stop"), 5).unwrap();
        assert_eq!(
            (stop.event_name().as_str(), name, keyword),
            ("SMS Unsubscribed", "SMS Unsubscribed", "stop")
        );
        assert_eq!(keyword_event(&sms("START"), 5).unwrap().1, "SMS Subscribed");
        assert!(keyword_event(&sms("HELP"), 5).is_none());
        assert!(keyword_event(&sms("stop+sending+deals"), 5).is_none());
        assert!(twiml_answer(&sms("help")).contains(HELP_TEXT));
        assert!(twiml_answer(&sms("STOP")).ends_with("<Response></Response>"));
        assert_eq!(phone_digits("+1 (415) 555-0100"), "14155550100");
    }
}
