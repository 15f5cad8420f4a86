//! The Segment tracking API: request envelopes and message validation.
//!
//! A request body is either one message (`/v1/track`, …) or a batch (`/v1/batch`, `/v1/import`):
//! `{"batch": [...], "sentAt": ..., "context": ..., "integrations": ..., "writeKey": ...}`. Each message is
//! validated on its own: a batch with some invalid messages keeps the valid ones (see `docs/ingest.md`).
//!
//! Limits follow Segment: 32 KB per message ([`MAX_MESSAGE_BYTES`]), 500 KB per request
//! ([`MAX_REQUEST_BYTES`], measured after decompression).

use crate::timestamps::{corrected_timestamp, format, parse_iso8601};
use cairn_model::{ErrorCode, Identifier, IdentifierKind, MessageKind, NormalizedMessage};
use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::HashMap;
use xxhash_rust::xxh3::xxh3_128;

/// Largest accepted message, in bytes of JSON.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// Largest accepted request body, in bytes after decompression.
pub const MAX_REQUEST_BYTES: usize = 500 * 1024;

/// Why a request or a message was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: ErrorCode,
    pub message: String,
}

impl Rejection {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Rejection {
            code,
            message: message.into(),
        }
    }
}

/// Which kind of endpoint a body was posted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// One message of a known type (`/v1/track`, `/v1/t`, …).
    Single(MessageKind),
    /// A batch (`/v1/batch`, `/v1/import`, `/v1/b`).
    Batch,
}

/// A parsed request: its envelope fields and its messages, each still raw JSON or already rejected.
#[derive(Debug)]
pub struct ParsedRequest {
    pub write_key: Option<String>,
    pub envelope: Envelope,
    pub messages: Vec<Result<Map<String, Value>, Rejection>>,
}

/// Request-level fields that apply to every message of a batch that lacks its own.
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    pub sent_at: Option<DateTime<Utc>>,
    pub context: Option<Map<String, Value>>,
    pub integrations: Option<Map<String, Value>>,
}

/// Parses a request body (already decompressed and checked to be UTF-8 and within [`MAX_REQUEST_BYTES`]).
pub fn parse_request(body: &str, endpoint: Endpoint) -> Result<ParsedRequest, Rejection> {
    match endpoint {
        Endpoint::Single(kind) => parse_single(body, kind),
        Endpoint::Batch => parse_batch(body),
    }
}

fn json_error(error: serde_json::Error) -> Rejection {
    Rejection::new(ErrorCode::InvalidJson, format!("invalid JSON: {error}"))
}

fn parse_single(body: &str, kind: MessageKind) -> Result<ParsedRequest, Rejection> {
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(too_large(body.len()));
    }
    let value: Value = serde_json::from_str(body).map_err(json_error)?;
    let Value::Object(mut message) = value else {
        return Err(Rejection::new(
            ErrorCode::InvalidBody,
            "the body must be a JSON object",
        ));
    };
    let write_key = take_write_key(&mut message)?;
    message.insert("type".into(), Value::String(kind.as_str().into()));
    Ok(ParsedRequest {
        write_key,
        envelope: Envelope::default(),
        messages: vec![Ok(message)],
    })
}

fn parse_batch(body: &str) -> Result<ParsedRequest, Rejection> {
    let top: HashMap<String, &RawValue> = serde_json::from_str(body).map_err(|error| {
        if error.is_data() {
            Rejection::new(
                ErrorCode::InvalidBody,
                "a batch body must be a JSON object with a `batch` array",
            )
        } else {
            json_error(error)
        }
    })?;
    let items: Vec<&RawValue> = match top.get("batch") {
        Some(raw) => serde_json::from_str(raw.get()).map_err(|_| {
            Rejection::new(
                ErrorCode::InvalidBody,
                "`batch` must be an array of messages",
            )
        })?,
        None => {
            return Err(Rejection::new(
                ErrorCode::InvalidBody,
                "a batch body needs a `batch` array",
            ))
        }
    };
    if items.is_empty() {
        return Err(Rejection::new(
            ErrorCode::EmptyBatch,
            "the batch holds no messages",
        ));
    }
    let write_key = match top.get("writeKey") {
        Some(raw) => match serde_json::from_str::<Value>(raw.get()).map_err(json_error)? {
            Value::String(key) => Some(key),
            Value::Null => None,
            _ => {
                return Err(Rejection::new(
                    ErrorCode::InvalidField,
                    "`writeKey` must be a string",
                ))
            }
        },
        None => None,
    };
    let envelope = Envelope {
        sent_at: match top.get("sentAt") {
            Some(raw) => timestamp_field(
                &serde_json::from_str(raw.get()).map_err(json_error)?,
                "sentAt",
            )?,
            None => None,
        },
        context: object_from_raw(top.get("context"), "context")?,
        integrations: object_from_raw(top.get("integrations"), "integrations")?,
    };
    let messages = items
        .into_iter()
        .map(|raw| {
            if raw.get().len() > MAX_MESSAGE_BYTES {
                return Err(too_large(raw.get().len()));
            }
            match serde_json::from_str::<Value>(raw.get()).map_err(json_error)? {
                Value::Object(mut message) => {
                    message.remove("writeKey");
                    Ok(message)
                }
                _ => Err(Rejection::new(
                    ErrorCode::InvalidBody,
                    "each batch item must be a JSON object",
                )),
            }
        })
        .collect();
    Ok(ParsedRequest {
        write_key,
        envelope,
        messages,
    })
}

fn too_large(len: usize) -> Rejection {
    Rejection::new(
        ErrorCode::MessageTooLarge,
        format!("message is {len} bytes, the limit is {MAX_MESSAGE_BYTES}"),
    )
}

fn take_write_key(message: &mut Map<String, Value>) -> Result<Option<String>, Rejection> {
    match message.remove("writeKey") {
        Some(Value::String(key)) => Ok(Some(key)),
        None | Some(Value::Null) => Ok(None),
        Some(_) => Err(Rejection::new(
            ErrorCode::InvalidField,
            "`writeKey` must be a string",
        )),
    }
}

fn object_from_raw(
    raw: Option<&&RawValue>,
    field: &str,
) -> Result<Option<Map<String, Value>>, Rejection> {
    match raw {
        None => Ok(None),
        Some(raw) => object_field(serde_json::from_str(raw.get()).map_err(json_error)?, field),
    }
}

fn object_field(value: Value, field: &str) -> Result<Option<Map<String, Value>>, Rejection> {
    match value {
        Value::Object(map) => Ok(Some(map)),
        Value::Null => Ok(None),
        _ => Err(Rejection::new(
            ErrorCode::InvalidField,
            format!("`{field}` must be an object"),
        )),
    }
}

fn timestamp_field(value: &Value, field: &str) -> Result<Option<DateTime<Utc>>, Rejection> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => parse_iso8601(text).map(Some).ok_or_else(|| {
            Rejection::new(
                ErrorCode::InvalidTimestamp,
                format!("`{field}` is not an ISO-8601 timestamp: {text:?}"),
            )
        }),
        _ => Err(Rejection::new(
            ErrorCode::InvalidTimestamp,
            format!("`{field}` must be an ISO-8601 string"),
        )),
    }
}

/// An id field: a non-empty string, or a number (some libraries send numeric user ids).
fn id_field(message: &Map<String, Value>, field: &str) -> Result<Option<String>, Rejection> {
    match message.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(Value::Number(number)) => Ok(Some(number.to_string())),
        Some(_) => Err(Rejection::new(
            ErrorCode::InvalidField,
            format!("`{field}` must be a string"),
        )),
    }
}

/// Validates one message and normalizes it for the writer.
///
/// `received_at` is the server's time of receipt (it comes with the input; nothing here reads a clock).
pub fn normalize(
    mut message: Map<String, Value>,
    envelope: &Envelope,
    received_at: DateTime<Utc>,
) -> Result<NormalizedMessage, Rejection> {
    let kind = match message.get("type") {
        Some(Value::String(text)) => MessageKind::parse(text).ok_or_else(|| {
            Rejection::new(
                ErrorCode::InvalidType,
                format!("unknown message type {text:?}"),
            )
        })?,
        _ => {
            return Err(Rejection::new(
                ErrorCode::InvalidType,
                "a message needs a `type`",
            ))
        }
    };
    let user_id = id_field(&message, "userId")?;
    let anonymous_id = id_field(&message, "anonymousId")?;
    if user_id.is_none() && anonymous_id.is_none() {
        return Err(Rejection::new(
            ErrorCode::MissingIdentity,
            "a message needs a `userId` or an `anonymousId`",
        ));
    }
    for field in ["properties", "traits", "context", "integrations"] {
        if let Some(value) = message.get(field) {
            if !value.is_object() && !value.is_null() {
                return Err(Rejection::new(
                    ErrorCode::InvalidField,
                    format!("`{field}` must be an object"),
                ));
            }
        }
    }
    let name = match kind {
        MessageKind::Track => match message.get("event") {
            Some(Value::String(event)) if !event.trim().is_empty() => Some(event.clone()),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(Rejection::new(
                    ErrorCode::MissingEvent,
                    "a track message needs an `event` name",
                ))
            }
            Some(_) => {
                return Err(Rejection::new(
                    ErrorCode::InvalidField,
                    "`event` must be a string",
                ))
            }
        },
        MessageKind::Page | MessageKind::Screen => match message.get("name") {
            Some(Value::String(name)) => Some(name.clone()),
            None | Some(Value::Null) => None,
            Some(_) => {
                return Err(Rejection::new(
                    ErrorCode::InvalidField,
                    "`name` must be a string",
                ))
            }
        },
        _ => None,
    };
    let previous_id = id_field(&message, "previousId")?;
    if kind == MessageKind::Alias && previous_id.is_none() {
        return Err(Rejection::new(
            ErrorCode::MissingPreviousId,
            "an alias message needs a `previousId`",
        ));
    }
    if kind == MessageKind::Group && id_field(&message, "groupId")?.is_none() {
        return Err(Rejection::new(
            ErrorCode::MissingGroupId,
            "a group message needs a `groupId`",
        ));
    }

    let timestamp = timestamp_field(
        message.get("timestamp").unwrap_or(&Value::Null),
        "timestamp",
    )?;
    let original = match message.get("originalTimestamp") {
        Some(value) => timestamp_field(value, "originalTimestamp")?,
        None => None,
    };
    let sent_at = match message.get("sentAt") {
        Some(value) => timestamp_field(value, "sentAt")?,
        None => None,
    }
    .or(envelope.sent_at);
    let original = original.or(timestamp);
    let corrected = corrected_timestamp(original, sent_at, received_at);

    let message_id = match message.get("messageId") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        None | Some(Value::Null) | Some(Value::String(_)) => generated_message_id(&message),
        Some(_) => {
            return Err(Rejection::new(
                ErrorCode::InvalidField,
                "`messageId` must be a string",
            ))
        }
    };

    fill_from_envelope(&mut message, "context", envelope.context.as_ref());
    fill_from_envelope(&mut message, "integrations", envelope.integrations.as_ref());
    let traits = profile_traits(kind, &message);
    let mut identifiers = Vec::with_capacity(3);
    if let Some(user_id) = &user_id {
        identifiers.push(Identifier::new(IdentifierKind::UserId, user_id.clone()));
    }
    if let Some(Value::String(email)) = traits.get("email") {
        if !email.trim().is_empty() {
            identifiers.push(Identifier::email(email));
        }
    }
    if let Some(anonymous_id) = &anonymous_id {
        identifiers.push(Identifier::new(
            IdentifierKind::AnonymousId,
            anonymous_id.clone(),
        ));
    }

    if let Some(user_id) = user_id {
        message.insert("userId".into(), Value::String(user_id));
    }
    if let Some(anonymous_id) = anonymous_id {
        message.insert("anonymousId".into(), Value::String(anonymous_id));
    }
    message.insert("messageId".into(), Value::String(message_id.clone()));
    if let Some(original) = original {
        message.insert("originalTimestamp".into(), Value::String(format(original)));
    }
    if let Some(sent_at) = sent_at {
        message.insert("sentAt".into(), Value::String(format(sent_at)));
    }
    message.insert("timestamp".into(), Value::String(format(corrected)));
    message.insert("receivedAt".into(), Value::String(format(received_at)));

    Ok(NormalizedMessage {
        message_id,
        kind,
        identifiers,
        previous_id,
        name,
        timestamp: corrected,
        received_at,
        traits,
        body: message,
    })
}

/// A message without a `messageId` gets one derived from its content, so a client's retry of the same
/// message is still recognised as a duplicate.
fn generated_message_id(message: &Map<String, Value>) -> String {
    let canonical = Value::Object(message.clone()).to_string();
    format!("cairn-{:032x}", xxh3_128(canonical.as_bytes()))
}

fn fill_from_envelope(
    message: &mut Map<String, Value>,
    field: &str,
    shared: Option<&Map<String, Value>>,
) {
    let Some(shared) = shared else { return };
    let entry = message
        .entry(field.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if entry.is_null() {
        *entry = Value::Object(Map::new());
    }
    if let Value::Object(own) = entry {
        for (key, value) in shared {
            own.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
}

/// The traits a message sets on the person: `traits` of an identify, otherwise `context.traits`.
/// (A group's `traits` describe the group, not the person.)
fn profile_traits(kind: MessageKind, message: &Map<String, Value>) -> Map<String, Value> {
    let from_identify = match kind {
        MessageKind::Identify => message.get("traits").and_then(Value::as_object),
        _ => None,
    };
    let from_context = message
        .get("context")
        .and_then(|context| context.get("traits"))
        .and_then(Value::as_object);
    let mut traits = from_context.cloned().unwrap_or_default();
    if let Some(own) = from_identify {
        traits.extend(own.iter().map(|(key, value)| (key.clone(), value.clone())));
    }
    traits
}

#[cfg(test)]
mod tests;
