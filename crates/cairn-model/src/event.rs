//! Messages as accepted from clients and events as stored on a profile's timeline.

use crate::{Identifier, ProfileId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The six Segment message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    Identify,
    Track,
    Page,
    Screen,
    Group,
    Alias,
}

impl MessageKind {
    pub const ALL: [MessageKind; 6] = [
        MessageKind::Identify,
        MessageKind::Track,
        MessageKind::Page,
        MessageKind::Screen,
        MessageKind::Group,
        MessageKind::Alias,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Identify => "identify",
            MessageKind::Track => "track",
            MessageKind::Page => "page",
            MessageKind::Screen => "screen",
            MessageKind::Group => "group",
            MessageKind::Alias => "alias",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        MessageKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

/// A validated message, ready for the log: what identifies it, when it happened, and its text.
///
/// The message is kept as the client sent it (`raw`), so ingesting costs no rewrite of its JSON; the
/// normalized fields below are stored beside it and laid over it when the message is read back
/// (`cairn_core::segment::message_view`).
#[derive(Debug, Clone, PartialEq)]
pub struct NormalizedMessage {
    pub message_id: String,
    pub kind: MessageKind,
    /// Identifiers carried by the message, in resolution priority order (user id, email, anonymous id).
    pub identifiers: Vec<Identifier>,
    /// For `alias`: the id the user was known by before.
    pub previous_id: Option<String>,
    /// The event name (track), page/screen name, or `None`.
    pub name: Option<String>,
    /// Skew-corrected time the event happened.
    pub timestamp: DateTime<Utc>,
    /// The client's own time of the event, when it sent one.
    pub original_timestamp: Option<DateTime<Utc>>,
    /// When the client sent the message, when it said so.
    pub sent_at: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
    /// Traits to merge onto the profile (identify traits, or `context.traits`), as a JSON object's
    /// text; `None` when there are none.
    pub traits: Option<String>,
    /// The message's JSON object as sent (without `writeKey`, with the batch's shared `context` and
    /// `integrations` filled in).
    pub raw: String,
    /// For messages Cairn makes itself (delivery feedback, tracking): the profile the message is
    /// about, attached directly instead of through identity resolution. Never set from client input.
    pub profile: Option<crate::ProfileId>,
}

/// An event on a profile's timeline, as returned by the management API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Position in the store's log; unique and increasing in commit order.
    pub seq: i64,
    /// The profile the event was first attached to (may since have merged into another).
    pub profile_id: ProfileId,
    #[serde(rename = "type")]
    pub kind: MessageKind,
    pub message_id: String,
    pub name: Option<String>,
    pub timestamp: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// The Segment message, camelCase fields as sent, with `timestamp` skew-corrected.
    pub message: Value,
}
