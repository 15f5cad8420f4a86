//! Workspace ids, profile ids and the identifiers that attach events to profiles.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_128;

/// A workspace (a business unit): every record belongs to exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkspaceId(pub String);

impl WorkspaceId {
    pub fn new(id: impl Into<String>) -> Self {
        WorkspaceId(id.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for WorkspaceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The stable id of a unified profile, written `prof_` followed by 32 hex digits.
///
/// It is derived deterministically from the workspace and the identifier that created the profile, so
/// replaying the same input produces the same ids (a requirement for deterministic apply). In memory it
/// is the 128-bit value; only its text form crosses boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProfileId(pub u128);

/// The text prefix of every profile id.
const PROFILE_ID_PREFIX: &str = "prof_";

impl ProfileId {
    /// The id of a profile created by `first` in `workspace`.
    pub fn derive(workspace: &WorkspaceId, first: &Identifier) -> Self {
        let key = format!(
            "{}\u{1f}{}\u{1f}{}",
            workspace.0,
            first.kind.as_str(),
            first.value
        );
        ProfileId(xxh3_128(key.as_bytes()))
    }

    /// Parses the text form `prof_` + 32 lowercase hex digits; anything else is `None`.
    pub fn parse(text: &str) -> Option<Self> {
        let hex = text.strip_prefix(PROFILE_ID_PREFIX)?;
        if hex.len() != 32
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        u128::from_str_radix(hex, 16).ok().map(ProfileId)
    }
}

impl std::fmt::Display for ProfileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{PROFILE_ID_PREFIX}{:032x}", self.0)
    }
}

impl Serialize for ProfileId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ProfileId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        ProfileId::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not a profile id: {text:?}")))
    }
}

/// The kinds of exact identifier this release resolves on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentifierKind {
    UserId,
    Email,
    AnonymousId,
}

impl IdentifierKind {
    pub const ALL: [IdentifierKind; 3] = [
        IdentifierKind::UserId,
        IdentifierKind::Email,
        IdentifierKind::AnonymousId,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IdentifierKind::UserId => "user_id",
            IdentifierKind::Email => "email",
            IdentifierKind::AnonymousId => "anonymous_id",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        IdentifierKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

/// One identifier value of one kind, already normalized (emails are trimmed and lower-cased).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Identifier {
    #[serde(rename = "type")]
    pub kind: IdentifierKind,
    pub value: String,
}

impl Identifier {
    pub fn new(kind: IdentifierKind, value: impl Into<String>) -> Self {
        Identifier {
            kind,
            value: value.into(),
        }
    }

    /// An email identifier, normalized: surrounding whitespace removed and lower-cased.
    pub fn email(raw: &str) -> Self {
        Identifier::new(IdentifierKind::Email, raw.trim().to_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_ids_round_trip_through_text_and_reject_anything_else() {
        let id = ProfileId::derive(&WorkspaceId::new("acme"), &Identifier::email("a@b.c"));
        let text = id.to_string();
        assert!(text.starts_with("prof_") && text.len() == 37, "{text}");
        assert_eq!(ProfileId::parse(&text), Some(id));
        let json = serde_json::to_string(&id).expect("serialize");
        assert_eq!(serde_json::from_str::<ProfileId>(&json).expect("parse"), id);
        for bad in [
            "",
            "prof_",
            "prof_xyz",
            &text.to_uppercase(),
            &format!("{text}0"),
            &text[5..],
        ] {
            assert_eq!(ProfileId::parse(bad), None, "{bad:?}");
        }
    }
}
