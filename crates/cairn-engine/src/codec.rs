//! The encoding of log payloads: a request's messages, compactly, for the log and for replay.
//!
//! A `Messages` record's payload is the LZ4-compressed postcard encoding of a `Vec<EncodedMessage>`.
//! Messages are encoded one by one on the caller's thread ([`EncodedRequest::new`]); the log writer
//! concatenates the ones that are not duplicates ([`EncodedRequest::payload`]), which yields exactly
//! the encoding of the vector (postcard writes a length, then the elements).

use cairn_model::{Identifier, IdentifierKind, MessageKind, NormalizedMessage, WorkspaceId};
use serde::{Deserialize, Serialize};
use std::ops::Range;
use xxhash_rust::xxh3::xxh3_128;

/// Why a payload could not be decoded (only a corrupt store produces one).
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("log payload does not decompress: {0}")]
    Compression(String),
    #[error("log payload does not decode: {0}")]
    Encoding(String),
    #[error("log payload has an unknown {what} code {code}")]
    UnknownCode { what: &'static str, code: u8 },
}

/// One message as stored in the log. Strings borrow from the decompressed payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncodedMessage<'a> {
    pub message_id: &'a str,
    pub kind: u8,
    #[serde(borrow)]
    pub identifiers: Vec<(u8, &'a str)>,
    #[serde(borrow)]
    pub previous_id: Option<&'a str>,
    #[serde(borrow)]
    pub name: Option<&'a str>,
    /// The skew-corrected time of the event.
    pub timestamp_ms: i64,
    pub original_timestamp_ms: Option<i64>,
    pub sent_at_ms: Option<i64>,
    /// Traits to merge onto the profile, as a JSON object; `None` when there are none.
    #[serde(borrow)]
    pub traits: Option<&'a str>,
    /// The Segment message as the client sent it ([`cairn_core::segment::message_view`] reads it).
    pub raw: &'a str,
    /// The profile a message Cairn made itself is about (see [`NormalizedMessage::profile`]).
    pub profile: Option<u128>,
}

/// The de-duplication key of a message: a 128-bit hash of its workspace and message id, stored with
/// each log record (collisions: ~2⁻¹²⁸ per pair).
pub fn dedupe_key(workspace: &WorkspaceId, message_id: &str) -> u128 {
    let mut bytes = Vec::with_capacity(workspace.as_str().len() + message_id.len() + 1);
    bytes.extend_from_slice(workspace.as_str().as_bytes());
    bytes.push(0x1f);
    bytes.extend_from_slice(message_id.as_bytes());
    xxh3_128(&bytes)
}

fn kind_code(kind: MessageKind) -> u8 {
    match kind {
        MessageKind::Identify => 1,
        MessageKind::Track => 2,
        MessageKind::Page => 3,
        MessageKind::Screen => 4,
        MessageKind::Group => 5,
        MessageKind::Alias => 6,
    }
}

fn identifier_code(kind: IdentifierKind) -> u8 {
    match kind {
        IdentifierKind::UserId => 1,
        IdentifierKind::Email => 2,
        IdentifierKind::AnonymousId => 3,
    }
}

impl EncodedMessage<'_> {
    pub fn kind(&self) -> Result<MessageKind, CodecError> {
        MessageKind::ALL
            .into_iter()
            .find(|kind| kind_code(*kind) == self.kind)
            .ok_or(CodecError::UnknownCode {
                what: "message kind",
                code: self.kind,
            })
    }

    pub fn identifiers(&self) -> Result<Vec<Identifier>, CodecError> {
        self.identifiers
            .iter()
            .map(|(code, value)| {
                IdentifierKind::ALL
                    .into_iter()
                    .find(|kind| identifier_code(*kind) == *code)
                    .map(|kind| Identifier::new(kind, *value))
                    .ok_or(CodecError::UnknownCode {
                        what: "identifier kind",
                        code: *code,
                    })
            })
            .collect()
    }
}

/// A request's messages, encoded on the caller's thread, waiting for the log writer.
#[derive(Debug)]
pub struct EncodedRequest {
    /// The encoded messages, one after the other.
    bytes: Vec<u8>,
    /// Where each message is in `bytes`.
    messages: Vec<Range<usize>>,
}

impl EncodedRequest {
    pub fn new(messages: &[NormalizedMessage]) -> Self {
        let mut bytes = Vec::with_capacity(messages.len() * 512);
        let mut ranges = Vec::with_capacity(messages.len());
        for message in messages {
            let encoded = EncodedMessage {
                message_id: &message.message_id,
                kind: kind_code(message.kind),
                identifiers: message
                    .identifiers
                    .iter()
                    .map(|i| (identifier_code(i.kind), i.value.as_str()))
                    .collect(),
                previous_id: message.previous_id.as_deref(),
                name: message.name.as_deref(),
                timestamp_ms: message.timestamp.timestamp_millis(),
                original_timestamp_ms: message.original_timestamp.map(|t| t.timestamp_millis()),
                sent_at_ms: message.sent_at.map(|t| t.timestamp_millis()),
                traits: message.traits.as_deref(),
                raw: &message.raw,
                profile: message.profile.map(|id| id.0),
            };
            let start = bytes.len();
            // Writing into a Vec cannot fail.
            bytes = postcard::to_extend(&encoded, bytes).unwrap_or_default();
            ranges.push(start..bytes.len());
        }
        EncodedRequest {
            bytes,
            messages: ranges,
        }
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The compressed payload of the messages whose index `keep` accepts, in order.
    pub fn payload(&self, keep: impl Fn(usize) -> bool) -> Vec<u8> {
        let kept: Vec<&Range<usize>> = self
            .messages
            .iter()
            .enumerate()
            .filter(|(index, _)| keep(*index))
            .map(|(_, range)| range)
            .collect();
        let mut plain = Vec::with_capacity(self.bytes.len() + 10);
        write_varint(&mut plain, kept.len() as u64);
        for range in kept {
            plain.extend_from_slice(&self.bytes[range.clone()]);
        }
        lz4_flex::compress_prepend_size(&plain)
    }
}

/// postcard's length prefix: LEB128.
fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// The message as the API and conditions see it: the client's JSON with the normalized fields laid
/// over it ([`cairn_core::segment::message_view`]).
pub fn message_json(
    received_at_ms: i64,
    message: &EncodedMessage<'_>,
) -> Result<serde_json::Value, CodecError> {
    let time = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .ok_or_else(|| CodecError::Encoding(format!("timestamp {ms} out of range")))
    };
    let identifiers = message.identifiers()?;
    let view = cairn_core::segment::MessageView {
        kind: message.kind()?,
        identifiers: &identifiers,
        message_id: message.message_id,
        timestamp: time(message.timestamp_ms)?,
        original_timestamp: message.original_timestamp_ms.map(time).transpose()?,
        sent_at: message.sent_at_ms.map(time).transpose()?,
        received_at: time(received_at_ms)?,
    };
    cairn_core::segment::message_view(message.raw, &view)
        .map(serde_json::Value::Object)
        .map_err(|error| CodecError::Encoding(format!("event text: {error}")))
}

/// Decompresses a payload; decode it with [`decode_messages`].
pub fn decompress(payload: &[u8]) -> Result<Vec<u8>, CodecError> {
    lz4_flex::decompress_size_prepended(payload)
        .map_err(|error| CodecError::Compression(error.to_string()))
}

/// The messages of a decompressed payload.
pub fn decode_messages(plain: &[u8]) -> Result<Vec<EncodedMessage<'_>>, CodecError> {
    postcard::from_bytes(plain).map_err(|error| CodecError::Encoding(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::segment::{normalize_object, Envelope};
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;
    use serde_json::json;

    fn message(value: serde_json::Value) -> NormalizedMessage {
        let at = Utc
            .with_ymd_and_hms(2024, 5, 1, 12, 0, 0)
            .single()
            .expect("time");
        normalize_object(
            value.as_object().cloned().expect("object"),
            &Envelope::default(),
            at,
        )
        .expect("valid")
    }

    #[test]
    fn kept_messages_decode_to_what_was_encoded() {
        let messages = vec![
            message(
                json!({"type": "identify", "userId": "u1", "anonymousId": "a1",
                "traits": {"email": "Ann@X.io", "plan": "pro"}, "messageId": "m1"}),
            ),
            message(
                json!({"type": "track", "userId": "u1", "event": "Order Completed",
                "properties": {"total": 42}, "messageId": "m2"}),
            ),
            message(
                json!({"type": "alias", "userId": "u2", "previousId": "u1", "messageId": "m3"}),
            ),
        ];
        let request = EncodedRequest::new(&messages);
        assert_eq!(request.len(), 3);
        let plain = decompress(&request.payload(|index| index != 1)).expect("decompress");
        let decoded = decode_messages(&plain).expect("decode");
        assert_eq!(decoded.len(), 2);
        for (decoded, original) in decoded.iter().zip([&messages[0], &messages[2]]) {
            assert_eq!(decoded.message_id, original.message_id);
            assert_eq!(decoded.kind().expect("kind"), original.kind);
            assert_eq!(
                decoded.identifiers().expect("identifiers"),
                original.identifiers
            );
            assert_eq!(decoded.previous_id, original.previous_id.as_deref());
            assert_eq!(decoded.timestamp_ms, original.timestamp.timestamp_millis());
            assert_eq!(decoded.raw, original.raw);
        }
        let traits: serde_json::Value =
            serde_json::from_str(decoded[0].traits.expect("traits")).expect("json");
        assert_eq!(traits["plan"], "pro");
        assert_eq!(decoded[1].traits, None);
        assert!(
            decode_messages(&decompress(&request.payload(|_| false)).expect("empty"))
                .expect("decode")
                .is_empty()
        );
    }

    #[test]
    fn corrupt_payloads_are_errors_not_panics() {
        assert!(decompress(b"\x05\x00\x00\x00garbage").is_err());
        assert!(decode_messages(b"\x02\x01").is_err());
    }

    proptest! {
        #[test]
        fn varints_are_what_postcard_writes(value in any::<u64>()) {
            let mut ours = Vec::new();
            write_varint(&mut ours, value);
            let theirs = postcard::to_allocvec(&value).expect("encode");
            prop_assert_eq!(ours, theirs);
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decompress(&bytes).map(|plain| decode_messages(&plain).map(|m| m.len()));
            let _ = decode_messages(&bytes).map(|m| m.len());
        }
    }
}
