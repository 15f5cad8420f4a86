//! The Segment tracking API: request envelopes and message validation.
//!
//! A request body is either one message (`/v1/track`, …) or a batch (`/v1/batch`, `/v1/import`):
//! `{"batch": [...], "sentAt": ..., "context": ..., "integrations": ..., "writeKey": ...}`. Each message is
//! validated on its own: a batch with some invalid messages keeps the valid ones (see `docs/ingest.md`).
//!
//! Limits follow Segment: 32 KB per message ([`MAX_MESSAGE_BYTES`]), 500 KB per request
//! ([`MAX_REQUEST_BYTES`], measured after decompression).
//!
//! Validation reads only the fields Cairn needs, as a borrowed view of the JSON text (no tree is
//! built), and keeps each message's text as the client sent it. The normalized fields (type, ids,
//! corrected timestamp, message id) are stored beside the text and laid over it when the message is
//! read back ([`message_view`]). This keeps ingestion to about one pass over each byte.

use crate::timestamps::{corrected_timestamp, format, parse_iso8601};
use cairn_model::{ErrorCode, Identifier, IdentifierKind, MessageKind, NormalizedMessage};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;
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
pub struct ParsedRequest<'a> {
    pub write_key: Option<String>,
    pub envelope: Envelope,
    pub messages: Vec<Result<Message<'a>, Rejection>>,
}

/// One message of a request, still the client's JSON text.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// The message's JSON object.
    pub raw: &'a str,
    /// The type given by a single-message endpoint (`/v1/track`, …); a batch item names its own.
    pub endpoint_kind: Option<MessageKind>,
}

/// Request-level fields that apply to every message of a batch that lacks its own.
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    pub sent_at: Option<DateTime<Utc>>,
    pub context: Option<Map<String, Value>>,
    pub integrations: Option<Map<String, Value>>,
}

/// Deepest nesting of arrays and objects accepted in a message (so that reading it back never
/// exceeds the JSON parser's recursion limit).
pub const MAX_NESTING: usize = 128;

/// Parses a request body (already decompressed and checked to be UTF-8 and within [`MAX_REQUEST_BYTES`]).
pub fn parse_request(body: &str, endpoint: Endpoint) -> Result<ParsedRequest<'_>, Rejection> {
    match endpoint {
        Endpoint::Single(kind) => parse_single(body, kind),
        Endpoint::Batch => parse_batch(body),
    }
}

fn json_error(error: serde_json::Error) -> Rejection {
    Rejection::new(ErrorCode::InvalidJson, format!("invalid JSON: {error}"))
}

/// A syntax error is `invalid_json`; valid JSON of the wrong shape is `invalid_body`.
fn shape_error(error: serde_json::Error, shape: &str) -> Rejection {
    if error.is_data() {
        Rejection::new(ErrorCode::InvalidBody, format!("{shape}: {error}"))
    } else {
        json_error(error)
    }
}

/// Rejects JSON that nests deeper than [`MAX_NESTING`] (the text must be valid JSON).
fn check_nesting(text: &str) -> Result<(), Rejection> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for byte in text.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Rejection::new(
                        ErrorCode::InvalidJson,
                        format!("the message nests deeper than {MAX_NESTING} levels"),
                    ));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// The message-level fields of the body of a single-message request that concern the request.
#[derive(Deserialize)]
struct SingleEnvelope<'a> {
    #[serde(rename = "writeKey", borrow, default)]
    write_key: Option<&'a RawValue>,
}

fn parse_single(body: &str, kind: MessageKind) -> Result<ParsedRequest<'_>, Rejection> {
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(too_large(body.len()));
    }
    let envelope: SingleEnvelope = serde_json::from_str(body)
        .map_err(|error| shape_error(error, "the body must be a JSON object"))?;
    check_nesting(body)?;
    let write_key = match envelope.write_key {
        Some(raw) => string_value(raw)
            .map(|key| Some(key.into_owned()))
            .ok_or_else(|| {
                Rejection::new(ErrorCode::InvalidField, "`writeKey` must be a string")
            })?,
        None => None,
    };
    Ok(ParsedRequest {
        write_key,
        envelope: Envelope::default(),
        messages: vec![Ok(Message {
            raw: body,
            endpoint_kind: Some(kind),
        })],
    })
}

/// The fields of a batch body.
#[derive(Deserialize)]
struct BatchBody<'a> {
    #[serde(borrow)]
    batch: Option<&'a RawValue>,
    #[serde(rename = "writeKey", borrow, default)]
    write_key: Option<&'a RawValue>,
    #[serde(rename = "sentAt", borrow, default)]
    sent_at: Option<&'a RawValue>,
    #[serde(borrow, default)]
    context: Option<&'a RawValue>,
    #[serde(borrow, default)]
    integrations: Option<&'a RawValue>,
}

fn parse_batch(body: &str) -> Result<ParsedRequest<'_>, Rejection> {
    let top: BatchBody = serde_json::from_str(body).map_err(|error| {
        shape_error(
            error,
            "a batch body must be a JSON object with a `batch` array",
        )
    })?;
    let Some(batch) = top.batch else {
        return Err(Rejection::new(
            ErrorCode::InvalidBody,
            "a batch body needs a `batch` array",
        ));
    };
    let items: Vec<&RawValue> = serde_json::from_str(batch.get()).map_err(|_| {
        Rejection::new(
            ErrorCode::InvalidBody,
            "`batch` must be an array of messages",
        )
    })?;
    if items.is_empty() {
        return Err(Rejection::new(
            ErrorCode::EmptyBatch,
            "the batch holds no messages",
        ));
    }
    let write_key = match top.write_key {
        Some(raw) => Some(string_value(raw).map(Cow::into_owned).ok_or_else(|| {
            Rejection::new(ErrorCode::InvalidField, "`writeKey` must be a string")
        })?),
        None => None,
    };
    let envelope = Envelope {
        sent_at: match top.sent_at {
            Some(raw) => timestamp_field(Some(raw), "sentAt")?,
            None => None,
        },
        context: object_from_raw(top.context, "context")?,
        integrations: object_from_raw(top.integrations, "integrations")?,
    };
    let messages = items
        .into_iter()
        .map(|raw| {
            let raw = raw.get();
            if raw.len() > MAX_MESSAGE_BYTES {
                return Err(too_large(raw.len()));
            }
            check_nesting(raw)?;
            if !raw.starts_with('{') {
                return Err(Rejection::new(
                    ErrorCode::InvalidBody,
                    "each batch item must be a JSON object",
                ));
            }
            Ok(Message {
                raw,
                endpoint_kind: None,
            })
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

fn object_from_raw(
    raw: Option<&RawValue>,
    field: &str,
) -> Result<Option<Map<String, Value>>, Rejection> {
    match raw {
        None => Ok(None),
        Some(raw) if raw.get().starts_with('{') => serde_json::from_str(raw.get())
            .map(Some)
            .map_err(json_error),
        Some(_) => Err(Rejection::new(
            ErrorCode::InvalidField,
            format!("`{field}` must be an object"),
        )),
    }
}

/// A JSON string's value (borrowed unless it has escapes), or `None` for anything else.
fn string_value(raw: &RawValue) -> Option<Cow<'_, str>> {
    if !raw.get().starts_with('"') {
        return None;
    }
    serde_json::from_str::<Cow<'_, str>>(raw.get()).ok()
}

fn is_object(raw: &RawValue) -> bool {
    raw.get().starts_with('{')
}

fn timestamp_field(
    raw: Option<&RawValue>,
    field: &str,
) -> Result<Option<DateTime<Utc>>, Rejection> {
    let Some(raw) = raw else { return Ok(None) };
    match string_value(raw) {
        Some(text) => parse_iso8601(&text).map(Some).ok_or_else(|| {
            Rejection::new(
                ErrorCode::InvalidTimestamp,
                format!("`{field}` is not an ISO-8601 timestamp: {text:?}"),
            )
        }),
        None => Err(Rejection::new(
            ErrorCode::InvalidTimestamp,
            format!("`{field}` must be an ISO-8601 string"),
        )),
    }
}

/// An id field: a non-empty string, or a number (some libraries send numeric user ids).
fn id_field(raw: Option<&RawValue>, field: &str) -> Result<Option<String>, Rejection> {
    let Some(raw) = raw else { return Ok(None) };
    let text = raw.get();
    if let Some(value) = string_value(raw) {
        return Ok((!value.trim().is_empty()).then(|| value.into_owned()));
    }
    if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return Ok(Some(text.to_string()));
    }
    Err(Rejection::new(
        ErrorCode::InvalidField,
        format!("`{field}` must be a string"),
    ))
}

/// The fields of a message that Cairn reads; everything else is kept as sent. (JSON `null` reads as
/// absent.)
#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<&'a RawValue>,
    #[serde(rename = "userId", borrow, default)]
    user_id: Option<&'a RawValue>,
    #[serde(rename = "anonymousId", borrow, default)]
    anonymous_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(rename = "previousId", borrow, default)]
    previous_id: Option<&'a RawValue>,
    #[serde(rename = "groupId", borrow, default)]
    group_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    timestamp: Option<&'a RawValue>,
    #[serde(rename = "originalTimestamp", borrow, default)]
    original_timestamp: Option<&'a RawValue>,
    #[serde(rename = "sentAt", borrow, default)]
    sent_at: Option<&'a RawValue>,
    #[serde(rename = "messageId", borrow, default)]
    message_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    properties: Option<&'a RawValue>,
    #[serde(borrow, default)]
    traits: Option<&'a RawValue>,
    #[serde(borrow, default)]
    context: Option<&'a RawValue>,
    #[serde(borrow, default)]
    integrations: Option<&'a RawValue>,
    #[serde(rename = "writeKey", borrow, default)]
    write_key: Option<&'a RawValue>,
}

/// The traits inside `context`.
#[derive(Deserialize)]
struct ContextTraits<'a> {
    #[serde(borrow, default)]
    traits: Option<&'a RawValue>,
}

/// The email among traits.
#[derive(Deserialize)]
struct EmailTrait<'a> {
    #[serde(borrow, default)]
    email: Option<&'a RawValue>,
}

/// Validates one message and normalizes it for the log.
///
/// `received_at` is the server's time of receipt (it comes with the input; nothing here reads a clock).
pub fn normalize(
    message: Message<'_>,
    envelope: &Envelope,
    received_at: DateTime<Utc>,
) -> Result<NormalizedMessage, Rejection> {
    let fields: Fields = serde_json::from_str(message.raw)
        .map_err(|error| shape_error(error, "a message must be a JSON object"))?;
    let shared = envelope.context.is_some() || envelope.integrations.is_some();
    if fields.write_key.is_none() && !shared {
        return normalize_fields(
            message.raw,
            &fields,
            message.endpoint_kind,
            envelope,
            received_at,
        );
    }
    // Rare: a writeKey inside the message, or a batch-level context to share. Rewrite the message
    // once, then normalize the rewritten text.
    let mut object: Map<String, Value> = serde_json::from_str(message.raw).map_err(json_error)?;
    object.remove("writeKey");
    fill_from_envelope(&mut object, "context", envelope.context.as_ref());
    fill_from_envelope(&mut object, "integrations", envelope.integrations.as_ref());
    let raw = Value::Object(object).to_string();
    let fields: Fields = serde_json::from_str(&raw).map_err(json_error)?;
    normalize_fields(&raw, &fields, message.endpoint_kind, envelope, received_at)
}

/// Validates a message given as a JSON object (imports, tests).
pub fn normalize_object(
    object: Map<String, Value>,
    envelope: &Envelope,
    received_at: DateTime<Utc>,
) -> Result<NormalizedMessage, Rejection> {
    let raw = Value::Object(object).to_string();
    check_nesting(&raw)?;
    normalize(
        Message {
            raw: &raw,
            endpoint_kind: None,
        },
        envelope,
        received_at,
    )
}

fn normalize_fields(
    raw: &str,
    fields: &Fields<'_>,
    endpoint_kind: Option<MessageKind>,
    envelope: &Envelope,
    received_at: DateTime<Utc>,
) -> Result<NormalizedMessage, Rejection> {
    let kind = match endpoint_kind {
        Some(kind) => kind,
        None => match fields.kind.map(string_value) {
            Some(Some(text)) => MessageKind::parse(&text).ok_or_else(|| {
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
        },
    };
    let user_id = id_field(fields.user_id, "userId")?;
    let anonymous_id = id_field(fields.anonymous_id, "anonymousId")?;
    if user_id.is_none() && anonymous_id.is_none() {
        return Err(Rejection::new(
            ErrorCode::MissingIdentity,
            "a message needs a `userId` or an `anonymousId`",
        ));
    }
    for (field, value) in [
        ("properties", fields.properties),
        ("traits", fields.traits),
        ("context", fields.context),
        ("integrations", fields.integrations),
    ] {
        if value.is_some_and(|raw| !is_object(raw)) {
            return Err(Rejection::new(
                ErrorCode::InvalidField,
                format!("`{field}` must be an object"),
            ));
        }
    }
    let name = match kind {
        MessageKind::Track => match fields.event {
            None => {
                return Err(Rejection::new(
                    ErrorCode::MissingEvent,
                    "a track message needs an `event` name",
                ))
            }
            Some(raw) => match string_value(raw) {
                Some(event) if !event.trim().is_empty() => Some(event.into_owned()),
                Some(_) => {
                    return Err(Rejection::new(
                        ErrorCode::MissingEvent,
                        "a track message needs an `event` name",
                    ))
                }
                None => {
                    return Err(Rejection::new(
                        ErrorCode::InvalidField,
                        "`event` must be a string",
                    ))
                }
            },
        },
        MessageKind::Page | MessageKind::Screen => match fields.name {
            None => None,
            Some(raw) => Some(
                string_value(raw)
                    .ok_or_else(|| {
                        Rejection::new(ErrorCode::InvalidField, "`name` must be a string")
                    })?
                    .into_owned(),
            ),
        },
        _ => None,
    };
    let previous_id = id_field(fields.previous_id, "previousId")?;
    if kind == MessageKind::Alias && previous_id.is_none() {
        return Err(Rejection::new(
            ErrorCode::MissingPreviousId,
            "an alias message needs a `previousId`",
        ));
    }
    if kind == MessageKind::Group && id_field(fields.group_id, "groupId")?.is_none() {
        return Err(Rejection::new(
            ErrorCode::MissingGroupId,
            "a group message needs a `groupId`",
        ));
    }

    let timestamp = timestamp_field(fields.timestamp, "timestamp")?;
    let original = timestamp_field(fields.original_timestamp, "originalTimestamp")?.or(timestamp);
    let sent_at = timestamp_field(fields.sent_at, "sentAt")?.or(envelope.sent_at);
    let corrected = corrected_timestamp(original, sent_at, received_at);

    let message_id = match fields.message_id {
        None => generated_message_id(raw, kind),
        Some(value) => match string_value(value) {
            Some(id) if !id.is_empty() => id.into_owned(),
            Some(_) => generated_message_id(raw, kind),
            None => {
                return Err(Rejection::new(
                    ErrorCode::InvalidField,
                    "`messageId` must be a string",
                ))
            }
        },
    };

    let traits = profile_traits(kind, fields)?;
    let mut identifiers = Vec::with_capacity(3);
    if let Some(user_id) = &user_id {
        identifiers.push(Identifier::new(IdentifierKind::UserId, user_id.clone()));
    }
    if let Some(email) = traits.as_deref().and_then(email_of) {
        identifiers.push(Identifier::email(&email));
    }
    if let Some(anonymous_id) = anonymous_id {
        identifiers.push(Identifier::new(IdentifierKind::AnonymousId, anonymous_id));
    }

    Ok(NormalizedMessage {
        message_id,
        kind,
        identifiers,
        previous_id,
        name,
        timestamp: corrected,
        original_timestamp: original,
        sent_at,
        received_at,
        traits,
        raw: raw.to_string(),
        profile: None,
    })
}

/// A message without a `messageId` gets one derived from its content, so a client's retry of the same
/// message is still recognised as a duplicate.
fn generated_message_id(raw: &str, kind: MessageKind) -> String {
    let mut bytes = Vec::with_capacity(raw.len() + 10);
    bytes.extend_from_slice(kind.as_str().as_bytes());
    bytes.push(0x1f);
    bytes.extend_from_slice(raw.as_bytes());
    format!("cairn-{:032x}", xxh3_128(&bytes))
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

/// The traits a message sets on the person, as a JSON object's text: `traits` of an identify,
/// otherwise `context.traits` (an identify's own traits win over its `context.traits`). A group's
/// `traits` describe the group, not the person.
fn profile_traits(kind: MessageKind, fields: &Fields<'_>) -> Result<Option<String>, Rejection> {
    let own = match kind {
        MessageKind::Identify => fields.traits,
        _ => None,
    };
    let from_context = match fields.context {
        Some(context) => serde_json::from_str::<ContextTraits>(context.get())
            .map_err(json_error)?
            .traits
            .filter(|raw| is_object(raw)),
        None => None,
    };
    Ok(match (from_context, own) {
        (None, None) => None,
        (Some(only), None) | (None, Some(only)) => non_empty_object(only),
        (Some(context), Some(own)) => {
            let mut merged: Map<String, Value> =
                serde_json::from_str(context.get()).map_err(json_error)?;
            let own: Map<String, Value> = serde_json::from_str(own.get()).map_err(json_error)?;
            merged.extend(own);
            (!merged.is_empty()).then(|| Value::Object(merged).to_string())
        }
    })
}

fn non_empty_object(raw: &RawValue) -> Option<String> {
    let inner = raw.get().trim_start_matches('{').trim_end_matches('}');
    (!inner.trim().is_empty()).then(|| raw.get().to_string())
}

/// The non-blank `email` among traits.
fn email_of(traits: &str) -> Option<String> {
    let email = serde_json::from_str::<EmailTrait>(traits).ok()?.email?;
    let email = string_value(email)?;
    (!email.trim().is_empty()).then(|| email.into_owned())
}

/// The normalized fields that are laid over a stored message's text when it is read back.
#[derive(Debug, Clone, Copy)]
pub struct MessageView<'a> {
    pub kind: MessageKind,
    pub identifiers: &'a [Identifier],
    pub message_id: &'a str,
    pub timestamp: DateTime<Utc>,
    pub original_timestamp: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
}

/// The message as the API returns it: the client's fields with `type`, `userId`, `anonymousId` (as
/// strings), `messageId`, `timestamp` (skew-corrected), `originalTimestamp`, `sentAt` and
/// `receivedAt` normalized.
pub fn message_view(
    raw: &str,
    view: &MessageView<'_>,
) -> Result<Map<String, Value>, serde_json::Error> {
    let mut message: Map<String, Value> = serde_json::from_str(raw)?;
    message.insert("type".into(), Value::String(view.kind.as_str().into()));
    for identifier in view.identifiers {
        let field = match identifier.kind {
            IdentifierKind::UserId => "userId",
            IdentifierKind::AnonymousId => "anonymousId",
            IdentifierKind::Email => continue,
        };
        message.insert(field.into(), Value::String(identifier.value.clone()));
    }
    message.insert("messageId".into(), Value::String(view.message_id.into()));
    if let Some(original) = view.original_timestamp {
        message.insert("originalTimestamp".into(), Value::String(format(original)));
    }
    if let Some(sent_at) = view.sent_at {
        message.insert("sentAt".into(), Value::String(format(sent_at)));
    }
    message.insert("timestamp".into(), Value::String(format(view.timestamp)));
    message.insert("receivedAt".into(), Value::String(format(view.received_at)));
    Ok(message)
}

/// The API view of a normalized message.
pub fn view_of(message: &NormalizedMessage) -> Result<Map<String, Value>, serde_json::Error> {
    message_view(
        &message.raw,
        &MessageView {
            kind: message.kind,
            identifiers: &message.identifiers,
            message_id: &message.message_id,
            timestamp: message.timestamp,
            original_timestamp: message.original_timestamp,
            sent_at: message.sent_at,
            received_at: message.received_at,
        },
    )
}

#[cfg(test)]
mod tests;
