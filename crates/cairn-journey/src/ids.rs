//! Small identifiers: enrollments, published journeys, steps, and deterministic message ids.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An enrollment's id, given by the engine (unique per workspace, never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EnrollmentId(pub u64);

/// A published journey version, as numbered by the engine's registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct JourneyKey(pub u32);

/// A step's position in its compiled journey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StepIndex(pub u16);

impl StepIndex {
    /// The index as a `usize` for slice access.
    pub fn get(self) -> usize {
        usize::from(self.0)
    }
}

/// A message's deterministic id: (enrollment, step, attempt). Written as 24 lowercase hex digits
/// (`{enrollment:016x}{step:04x}{attempt:04x}`), so the dispatcher can send at most once per id and an
/// engagement event carrying the id leads straight back to its enrollment and step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId {
    pub enrollment: EnrollmentId,
    pub step: StepIndex,
    pub attempt: u16,
}

impl MessageId {
    /// Length of the written form.
    pub const TEXT_LENGTH: usize = 24;

    /// Reads the written form; `None` for anything else.
    pub fn parse(text: &str) -> Option<MessageId> {
        if text.len() != Self::TEXT_LENGTH || !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return None;
        }
        Some(MessageId {
            enrollment: EnrollmentId(u64::from_str_radix(&text[..16], 16).ok()?),
            step: StepIndex(u16::from_str_radix(&text[16..20], 16).ok()?),
            attempt: u16::from_str_radix(&text[20..], 16).ok()?,
        })
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{:016x}{:04x}{:04x}",
            self.enrollment.0, self.step.0, self.attempt
        )
    }
}

impl Serialize for MessageId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MessageId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        MessageId::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not a message id")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn message_ids_round_trip_through_text(enrollment: u64, step: u16, attempt: u16) {
            let id = MessageId { enrollment: EnrollmentId(enrollment), step: StepIndex(step), attempt };
            let text = id.to_string();
            prop_assert_eq!(text.len(), MessageId::TEXT_LENGTH);
            prop_assert_eq!(MessageId::parse(&text), Some(id));
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(text in ".{0,30}") {
            let _ = MessageId::parse(&text);
        }
    }

    #[test]
    fn the_written_form_is_fixed_width_hex() {
        let id = MessageId {
            enrollment: EnrollmentId(0xabc),
            step: StepIndex(3),
            attempt: 1,
        };
        assert_eq!(id.to_string(), "0000000000000abc00030001");
        assert_eq!(MessageId::parse("zz00000000000abc00030001"), None);
    }
}
