//! The delivery channels and message categories every policy is keyed by.

use serde::{Deserialize, Serialize};

/// A delivery channel. The discriminants are stable: they are packed into [`crate::SendHistory`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Channel {
    Email = 0,
    Sms = 1,
    Push = 2,
    Webhook = 3,
}

impl Channel {
    /// Every channel, in discriminant order.
    pub const ALL: [Channel; 4] = [
        Channel::Email,
        Channel::Sms,
        Channel::Push,
        Channel::Webhook,
    ];

    /// The stable lowercase name (`email`, `sms`, `push`, `webhook`).
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Push => "push",
            Channel::Webhook => "webhook",
        }
    }

    /// The prefix of this channel's feedback event names (`Email Opened`, `SMS Delivered`, …).
    pub fn event_prefix(self) -> &'static str {
        match self {
            Channel::Email => "Email",
            Channel::Sms => "SMS",
            Channel::Push => "Push",
            Channel::Webhook => "Webhook",
        }
    }

    /// The index of this channel in per-channel arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The channel with this discriminant, if any.
    pub fn from_index(index: u8) -> Option<Channel> {
        Channel::ALL.get(usize::from(index)).copied()
    }

    /// Parses the lowercase name.
    pub fn parse(name: &str) -> Option<Channel> {
        Channel::ALL
            .into_iter()
            .find(|channel| channel.as_str() == name)
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a message is marketing (capped, quiet hours apply) or transactional (a receipt, a password
/// reset: bypasses caps and quiet hours, never consent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MessageCategory {
    #[default]
    Marketing,
    Transactional,
}
