//! Composing what goes on the wire from an outbox message: the template's latest published version
//! rendered for the profile (traits, the journey's data and trigger event, the customer's locale and
//! time zone), the recipient from the profile, tracking links, the unsubscribe link and headers.
//!
//! Everything here is decided from data the caller hands in, so it is tested without a server.

use cairn_channels::message::{
    EmailMessage, ListUnsubscribe, OutboundMessage, PushMessage, ResponseMapping, SmsMessage,
    WebhookRequest,
};
use cairn_delivery::{instrument_html, validate_e164, Channel, TrackingIds, TrackingSigner};
use cairn_model::ErrorCode;
use cairn_template::{CompiledTemplate, RenderContext};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Why a message cannot be composed: a permanent failure of that message, except
/// [`ComposeError::Federated`] (retried).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComposeError {
    #[error("the outbox message is malformed: {0}")]
    Malformed(&'static str),
    #[error("template {0:?} is unknown or has no published version")]
    UnknownTemplate(String),
    #[error("template {0:?} is for another channel")]
    WrongChannel(String),
    #[error("the template does not render: {0}")]
    Render(String),
    #[error("the profile has no {0}")]
    NoRecipient(&'static str),
    #[error("invalid recipient: {0}")]
    InvalidRecipient(String),
    #[error("{0}")]
    Tracking(String),
    /// A federated attribute the template reads could not be fetched (under its failure policy).
    #[error("{message}")]
    Federated { code: ErrorCode, message: String },
}

impl ComposeError {
    /// The stable error code recorded with the failure.
    pub fn code(&self) -> &'static str {
        match self {
            ComposeError::Malformed(_) => "internal",
            ComposeError::UnknownTemplate(_) | ComposeError::WrongChannel(_) => "invalid_template",
            ComposeError::Render(_) => "template_render_failed",
            ComposeError::NoRecipient(_) | ComposeError::InvalidRecipient(_) => "invalid_recipient",
            ComposeError::Tracking(_) => "invalid_channel_config",
            ComposeError::Federated { code, .. } => code.as_str(),
        }
    }

    /// Whether the message is worth composing again later (a federated source may come back).
    pub fn is_transient(&self) -> bool {
        matches!(self, ComposeError::Federated { .. })
    }
}

/// What composing needs besides the outbox message.
pub struct Inputs<'a> {
    /// The outbox message as the journey produced it (JSON).
    pub outbox: &'a Value,
    /// The profile's id (`prof_…`) and traits.
    pub profile_id: &'a str,
    pub traits: &'a Map<String, Value>,
    /// The template's published version, compiled.
    pub template: &'a CompiledTemplate,
    /// The federated attribute sets the template reads, fetched for the profile (`federated.*`).
    pub federated: Option<&'a Value>,
    /// Signs tracking and unsubscribe links; none: no tracking, no unsubscribe link.
    pub signer: Option<&'a TrackingSigner>,
    pub track_opens: bool,
    pub track_clicks: bool,
}

/// The message for the provider.
pub fn compose(channel: Channel, inputs: &Inputs<'_>) -> Result<OutboundMessage, ComposeError> {
    let outbox = inputs.outbox;
    let message_id = outbox["message_id"]
        .as_str()
        .ok_or(ComposeError::Malformed("no message_id"))?
        .to_string();
    let settings = outbox["settings"].as_object().cloned().unwrap_or_default();
    let ids = TrackingIds {
        message_id: message_id.clone(),
        profile_id: inputs.profile_id.to_string(),
    };
    let group = settings
        .get("subscription_group")
        .and_then(Value::as_u64)
        .and_then(|group| u32::try_from(group).ok());
    let unsubscribe_url = match inputs.signer {
        Some(signer) => Some(
            signer
                .unsubscribe_url(&ids, group)
                .map_err(|error| ComposeError::Tracking(error.to_string()))?,
        ),
        None => None,
    };
    let mut profile = inputs.traits.clone();
    profile.insert("id".into(), Value::String(inputs.profile_id.to_string()));
    let profile = Value::Object(profile);
    let journey = outbox.get("data").filter(|data| !data.is_null());
    let event = journey.and_then(|data| data.get("trigger"));
    let time_zone = inputs
        .traits
        .get("timezone")
        .and_then(Value::as_str)
        .and_then(|zone| zone.parse::<chrono_tz::Tz>().ok());
    let rendered = inputs
        .template
        .render(&RenderContext {
            profile: &profile,
            event,
            journey,
            federated: inputs.federated,
            message_id: &message_id,
            unsubscribe_url: unsubscribe_url.as_deref(),
            locale: inputs.traits.get("locale").and_then(Value::as_str),
            time_zone,
        })
        .map_err(|error| ComposeError::Render(error.to_string()))?;
    let trait_text = |name: &str| {
        inputs
            .traits
            .get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .map(str::to_string)
    };
    Ok(match channel {
        Channel::Email => {
            let to = trait_text("email").ok_or(ComposeError::NoRecipient("email address"))?;
            if !to.contains('@') {
                return Err(ComposeError::InvalidRecipient(to));
            }
            let html = match (rendered.html, inputs.signer) {
                (Some(html), Some(signer)) => Some(
                    instrument_html(
                        &html,
                        signer,
                        &ids,
                        cairn_delivery::TrackingOptions {
                            opens: inputs.track_opens,
                            clicks: inputs.track_clicks,
                        },
                    )
                    .map_err(|error| ComposeError::Tracking(error.to_string()))?,
                ),
                (html, _) => html,
            };
            OutboundMessage::Email(EmailMessage {
                message_id,
                to,
                from: settings
                    .get("from")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                reply_to: settings
                    .get("reply_to")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                subject: rendered.subject.unwrap_or_default(),
                html,
                text: rendered.text,
                list_unsubscribe: unsubscribe_url.map(|url| ListUnsubscribe { url, mailto: None }),
            })
        }
        Channel::Sms => {
            let to = trait_text("phone").ok_or(ComposeError::NoRecipient("phone number"))?;
            validate_e164(&to).map_err(|_| ComposeError::InvalidRecipient(to.clone()))?;
            OutboundMessage::Sms(SmsMessage {
                message_id,
                to,
                body: rendered.body.unwrap_or_default(),
            })
        }
        Channel::Push => {
            let token = trait_text("push_token")
                .or_else(|| {
                    inputs
                        .traits
                        .get("push_tokens")
                        .and_then(Value::as_array)
                        .and_then(|tokens| tokens.iter().rev().find_map(Value::as_str))
                        .map(str::to_string)
                })
                .ok_or(ComposeError::NoRecipient("push token"))?;
            let data: BTreeMap<String, String> = match rendered.json {
                Some(Value::Object(object)) => object
                    .into_iter()
                    .map(|(key, value)| {
                        let text = match value {
                            Value::String(text) => text,
                            other => other.to_string(),
                        };
                        (key, text)
                    })
                    .collect(),
                _ => BTreeMap::new(),
            };
            OutboundMessage::Push(PushMessage {
                message_id,
                device_token: token,
                title: rendered.title.unwrap_or_default(),
                body: rendered.body.unwrap_or_default(),
                data,
            })
        }
        Channel::Webhook => {
            let url = settings
                .get("url")
                .and_then(Value::as_str)
                .ok_or(ComposeError::NoRecipient("webhook url (settings.url)"))?
                .to_string();
            let response_mapping = settings
                .get("response_mapping")
                .and_then(Value::as_object)
                .map(|mapping| {
                    mapping
                        .iter()
                        .filter_map(|(pointer, attribute)| {
                            Some(ResponseMapping {
                                pointer: pointer.clone(),
                                attribute: attribute.as_str()?.to_string(),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            OutboundMessage::Webhook(WebhookRequest {
                message_id,
                url,
                body: rendered.json.unwrap_or(Value::Null),
                response_mapping,
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_delivery::SigningKey;
    use cairn_template::{compile, TemplateDocument, VariableSchema};
    use serde_json::json;

    fn template(document: Value) -> CompiledTemplate {
        let document: TemplateDocument = serde_json::from_value(document).expect("document");
        compile(
            &document,
            &VariableSchema::from_paths(["profile.*", "journey.*", "event.*"]),
        )
        .expect("compiles")
    }

    fn email_template() -> CompiledTemplate {
        template(
            json!({"id": "welcome", "channel": "email", "default_locale": "en", "variants": {
            "en": {"subject": "Hi {{ profile.first_name }}", "html": "<p>Hello {{ profile.first_name }}, <a href=\"https://shop.example/cart\">your cart</a></p>", "text": "Hello {{ profile.first_name }}"},
            "de": {"subject": "Hallo {{ profile.first_name }}", "html": "<p>Hallo</p>"}}}),
        )
    }

    fn outbox() -> Value {
        json!({"message_id": "00000000000000070001000", "settings": {"from": "shop@example.com"}, "data": null})
    }

    fn signer() -> TrackingSigner {
        TrackingSigner::new(
            "https://cairn.example",
            vec![
                SigningKey::new(b"0123456789abcdef0123456789abcdef".to_vec(), "keys").expect("key"),
            ],
        )
        .expect("signer")
    }

    #[test]
    fn an_email_is_personalized_tracked_and_unsubscribable_in_the_customers_locale() {
        let traits = json!({"first_name": "Ann", "email": "ann@example.com", "locale": "de-AT"});
        let signer = signer();
        let message = compose(
            Channel::Email,
            &Inputs {
                outbox: &outbox(),
                profile_id: "prof_1",
                traits: traits.as_object().expect("object"),
                template: &email_template(),
                federated: None,
                signer: Some(&signer),
                track_opens: true,
                track_clicks: true,
            },
        )
        .expect("composes");
        let OutboundMessage::Email(email) = message else {
            panic!("an email")
        };
        assert_eq!(email.to, "ann@example.com");
        assert_eq!(email.subject, "Hallo Ann", "German variant for de-AT");
        assert_eq!(email.from.as_deref(), Some("shop@example.com"));
        let unsubscribe = email.list_unsubscribe.expect("unsubscribe link");
        assert!(unsubscribe.url.starts_with("https://cairn.example/"));
        assert!(signer
            .verify(unsubscribe.url.rsplit('/').next().expect("token"))
            .is_ok());
    }

    #[test]
    fn missing_or_invalid_recipients_and_renders_are_permanent_failures() {
        let no_email = json!({"first_name": "Ann"});
        let inputs = |traits: &'static Value, template: &'static CompiledTemplate| Inputs {
            outbox: Box::leak(Box::new(outbox())),
            profile_id: "prof_1",
            traits: traits.as_object().expect("object"),
            template,
            federated: None,
            signer: None,
            track_opens: false,
            track_clicks: false,
        };
        let no_email: &'static Value = Box::leak(Box::new(no_email));
        let email: &'static CompiledTemplate = Box::leak(Box::new(email_template()));
        assert_eq!(
            compose(Channel::Email, &inputs(no_email, email))
                .expect_err("no address")
                .code(),
            "invalid_recipient"
        );
        let bad_phone: &'static Value = Box::leak(Box::new(json!({"phone": "0171 123"})));
        let sms: &'static CompiledTemplate = Box::leak(Box::new(template(
            json!({"id": "s", "channel": "sms", "default_locale": "en", "variants": {"en": {"body": "Hi"}}}),
        )));
        assert_eq!(
            compose(Channel::Sms, &inputs(bad_phone, sms)).expect_err("not E.164"),
            ComposeError::InvalidRecipient("0171 123".into())
        );
        let nameless: &'static Value = Box::leak(Box::new(json!({"email": "a@b.c"})));
        assert_eq!(
            compose(Channel::Email, &inputs(nameless, email))
                .expect_err("strict render")
                .code(),
            "template_render_failed",
            "a missing value is an error, never an empty string"
        );
    }
}
